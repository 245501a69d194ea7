//! The web dashboard's doors (docs/design.md §10; the state they share — logins, cookies, the
//! CSRF rule, the page files — is [`crate::web`]): the loopback listener ([`listener`], its
//! owner-cookie [`gate`]), the pages and sign-in of both listeners ([`pages`]), and
//! `POST /v1/web/login` / `GET /v1/web/session` ([`login`]).

pub mod gate;
pub mod listener;
pub mod login;
pub mod pages;
