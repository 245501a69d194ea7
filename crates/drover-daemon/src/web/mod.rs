//! The web dashboard (docs/design.md §10): a page shell and a few small ES modules of drover's
//! own, embedded in the binary ([`assets`]), that read the JSON API (`/v1/…`) and follow its SSE
//! streams. No build step, no Node, no CDN: what the browser loads is the files in `assets/`.

pub mod assets;
pub mod fleet;
