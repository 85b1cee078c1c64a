//! The CLI as a shell and a manual reader meet it: bash completion below the
//! first word (driven through bash's own `complete -F` function), manual pages
//! that exist for every page they name, top-level help that names every
//! subcommand and report.

use anyhow::{Context, Result};

use crate::support::Repo;

/// What bash offers for `words` (the last one being completed), through the
/// function the generated script registers with `complete -F`.
fn bash_complete(script: &std::path::Path, words: &[&str]) -> Result<Vec<String>> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = words.get(cword.wrapping_sub(1)).copied().unwrap_or("");
    let program = format!(
        "source '{}'\nf=$(complete -p git-audit | sed -E 's/.*-F ([^ ]+).*/\\1/')\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\n\"$f\" git-audit '{}' '{prev}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" "),
        words[cword],
    );
    let out = std::process::Command::new("bash").arg("-c").arg(program).output()?;
    anyhow::ensure!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.lines().map(str::to_string).collect())
}

#[test]
fn bash_completes_below_the_first_word() -> Result<()> {
    let repo = Repo::new()?;
    let (code, script, err) = repo.audit(&["completions", "bash"])?;
    assert_eq!(code, 0, "{err}");
    let file = repo.tmp.path().join("git-audit.bash");
    std::fs::write(&file, script)?;
    let top = bash_complete(&file, &["git-audit", ""])?;
    assert!(top.contains(&"report".to_string()) && top.contains(&"ledger".to_string()), "{top:?}");
    let reports = bash_complete(&file, &["git-audit", "report", ""])?;
    for r in ["trace", "deployments", "dora", "compliance"] {
        assert!(reports.contains(&r.to_string()), "`report <TAB>` lacks {r}: {reports:?}");
    }
    let formats = bash_complete(&file, &["git-audit", "report", "compliance", "--format", ""])?;
    assert_eq!(formats, ["table", "json", "csv", "markdown", "html"]);
    let writers = bash_complete(&file, &["git-audit", "ledger", "writers", ""])?;
    for w in ["add", "list", "revoke", "keygen"] {
        assert!(writers.contains(&w.to_string()), "{writers:?}");
    }
    let roles = bash_complete(&file, &["git-audit", "ledger", "writers", "add", "ci", "--role", ""])?;
    assert_eq!(roles, ["hooks", "sync", "ci", "operator"]);
    Ok(())
}

#[test]
fn every_manual_page_named_exists_and_help_names_every_command() -> Result<()> {
    let repo = Repo::new()?;
    let dir = repo.tmp.path().join("man1");
    let (code, out, err) = repo.audit(&["man", "--dir", dir.to_str().context("path")?])?;
    assert_eq!(code, 0, "{err}");
    let pages: Vec<String> =
        std::fs::read_dir(&dir)?.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned())).collect();
    assert!(out.contains(&format!("wrote {} manual pages", pages.len())), "{out}");
    for p in ["git-audit.1", "git-audit-verify.1", "git-audit-report-compliance.1", "git-audit-ledger-writers-add.1"] {
        assert!(pages.contains(&p.to_string()), "{p} missing: {pages:?}");
    }
    // Every page another page names (`git-audit-x(1)`, as roff writes it) exists.
    let named = regex::Regex::new(r"(git\\?-audit(?:\\?-[a-z]+)*)\\?\(1\\?\)")?;
    let top = std::fs::read_to_string(dir.join("git-audit.1"))?;
    assert!(named.captures_iter(&top).count() >= 14, "the top page names each command's page:\n{top}");
    for p in &pages {
        let text = std::fs::read_to_string(dir.join(p))?;
        for m in named.captures_iter(&text) {
            let name = m[1].replace('\\', "");
            assert!(pages.contains(&format!("{name}.1")), "{p} names {name}(1), which was not written");
        }
    }
    // Top-level help names every subcommand of every command with subcommands.
    let (_, help, _) = repo.audit(&["--help"])?;
    for (command, subs) in [
        (
            "ledger",
            vec![
                "init",
                "status",
                "checkpoint",
                "verify",
                "prove",
                "check-proof",
                "export",
                "anchor",
                "rebuild",
                "migrate",
                "writers",
                "append",
            ],
        ),
        ("report", vec!["trace", "deployments", "dora", "evidence", "pushes", "sources", "compliance"]),
        ("evidence", vec!["verify"]),
        ("policy", vec!["check", "explain"]),
        ("notify", vec!["drain", "test", "status", "enable"]),
        ("keys", vec!["list", "check", "add"]),
    ] {
        let line = help.lines().find(|l| l.trim_start().starts_with(&format!("{command} "))).context("a help line")?;
        let (_, sub_help, _) = repo.audit(&[command, "--help"])?;
        let real: Vec<&str> = sub_help
            .lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help")
            .collect();
        assert_eq!(real, subs, "{command}'s subcommands changed: update the test and the help line");
        for s in subs {
            assert!(line.contains(s), "`git-audit --help` does not name `{command} {s}`: {line}");
        }
    }
    Ok(())
}
