//! One line of `drover doctor`: what was checked, whether it works, and what to do if not.

pub(super) struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    pub hint: Option<String>,
}
