//! What every drover crate's tests share (dev-dependency only; never linked into `drover`).
