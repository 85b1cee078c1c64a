//! Terminal colour, only on a TTY (or when asked), and never with NO_COLOR.

use std::io::IsTerminal;

use super::ColorChoice;

pub fn enabled(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal(),
    }
}

pub fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

pub fn red(on: bool, t: &str) -> String {
    paint(on, "1;31", t)
}
pub fn yellow(on: bool, t: &str) -> String {
    paint(on, "33", t)
}
pub fn green(on: bool, t: &str) -> String {
    paint(on, "32", t)
}
pub fn dim(on: bool, t: &str) -> String {
    paint(on, "2", t)
}
