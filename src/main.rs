//! The `git-audit` binary: parse, set up logging, run, map to an exit code
//! (0 pass, 1 policy violation, 2 usage/configuration/runtime error).

use std::process::ExitCode;

use clap::Parser;
use git_audit::cli::{self, Cli, LogFormat, Outcome};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(cli.log_format, cli.color);
    let json = cli.log_format == LogFormat::Json;
    match cli::run(cli) {
        Ok(Outcome::Pass) => ExitCode::SUCCESS,
        Ok(Outcome::Violations) => ExitCode::from(1),
        Err(e) => {
            // libgit2's own errors are already in the message, in words
            // (without their `class=… code=…` internals).
            let causes: Vec<String> =
                e.chain().skip(1).filter(|c| c.downcast_ref::<git2::Error>().is_none()).map(ToString::to_string).collect();
            if json {
                // A JSON log pipeline keeps the one line that matters: one JSON object.
                let text = e.to_string();
                let (message, hint) = match text.split_once("\nHint: ") {
                    Some((m, h)) => (m.to_string(), Some(h.to_string())),
                    None => (text, None),
                };
                let line = serde_json::json!({
                    "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "level": "ERROR",
                    "fields": {"message": message, "hint": hint, "causes": causes},
                    "target": "git_audit",
                });
                eprintln!("{line}");
            } else {
                eprintln!("error: {e}");
                for cause in causes {
                    eprintln!("  caused by: {cause}");
                }
            }
            ExitCode::from(2)
        }
    }
}

fn init_logging(format: LogFormat, color: cli::ColorChoice) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("GIT_AUDIT_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour in log lines only where a person reads them: stderr is a terminal
    // (or --color always), never with --color never or NO_COLOR, never in files and pipes.
    let ansi = match color {
        cli::ColorChoice::Always => true,
        cli::ColorChoice::Never => false,
        cli::ColorChoice::Auto => std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.without_time().init(),
    }
}
