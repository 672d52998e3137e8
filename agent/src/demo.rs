//! The built-in demo (filled in below).
pub fn run(_keep: bool) -> Result<(), String> {
    Err("demo not built yet".into())
}
