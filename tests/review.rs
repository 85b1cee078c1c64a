//! Regular review: anomalies against the ledger's own history (#33). A year
//! of planted deployments synced from the fake GitHub, and pushes through the
//! real server hooks; each anomaly fires on its planted case and nowhere else.

use anyhow::{Context, Result};
use serde_json::Value;

use crate::fake_github::{sha, Fake, World, TOKEN};
use crate::hooks::{push, signing_policy, Server, MAIN_RULES};
use crate::support::{keys, Repo, Sign, BIN};

fn sync(repo: &Repo, fake: &Fake, policy: Option<&std::path::Path>) -> Result<()> {
    let mut c = repo.cmd(BIN);
    if let Some(p) = policy {
        c.env("GIT_AUDIT_POLICY", p);
    }
    let out = c.env("GITHUB_TOKEN", TOKEN).args(["sync", "--github", "acme/api", "--api-url", &fake.url]).output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

fn anomalies(repo: &Repo, args: &[&str]) -> Result<Vec<Value>> {
    let mut all = vec!["report", "compliance", "--since", "2026-01-01", "--format", "json"];
    all.extend_from_slice(args);
    let (code, out, err) = repo.audit(&all)?;
    anyhow::ensure!(code == 0 || code == 1, "{err}");
    let v: Value = serde_json::from_str(&out).with_context(|| out.clone())?;
    let found: Vec<Value> = v["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["rule"].as_str().is_some_and(|r| r.starts_with("anomaly.")))
        .cloned()
        .collect();
    assert_eq!(v["counts"]["anomalies"].as_u64(), Some(found.len() as u64), "counted apart: {}", v["counts"]);
    Ok(found)
}

/// A year of production deployments, Monday to Friday in office hours, by
/// alice and bob; staging by whoever. Planted: mallory's first deployment to
/// production, bob's deployment on a Saturday night, and a weakened
/// environment protection. Nothing else may fire.
#[test]
fn a_year_of_planted_deployments_fires_each_anomaly_on_its_plant_and_nowhere_else() -> Result<()> {
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let mut w = World::new("acme/api");
    let monday = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).context("date")?;
    let mut n = 0;
    for week in 0..44 {
        for day in 0..5u64 {
            // 09:00–16:59, varied.
            let hour = 9 + (week * 5 + day as i64) % 8;
            let date = monday + chrono::Days::new(week as u64 * 7 + day);
            let at = format!("{date}T{hour:02}:{:02}:00Z", (week * 7) % 60);
            let who = if n % 2 == 0 { "alice" } else { "bob" };
            let d = w.deployment(&sha(&format!("p{n}")), "main", "production", &at);
            w.deployment_creator(d, who);
            w.status(d, "success", &at, None);
            n += 1;
        }
    }
    // Staging: a different person each time, and too little history to learn from.
    for (i, who) in ["erin", "frank", "grace", "heidi", "ivan"].iter().enumerate() {
        let d = w.deployment(&sha(&format!("s{i}")), "main", "staging", &format!("2026-03-0{}T10:00:00Z", i + 2));
        w.deployment_creator(d, who);
        w.status(d, "success", &format!("2026-03-0{}T10:05:00Z", i + 2), None);
    }
    // Planted: mallory's first production deployment (a Wednesday, 11:00).
    let first = w.deployment(&sha("mallory"), "main", "production", "2026-11-11T11:00:00Z");
    w.deployment_creator(first, "mallory");
    w.status(first, "success", "2026-11-11T11:05:00Z", None);
    // Planted: bob, on a Saturday at 03:00.
    let late = w.deployment(&sha("late"), "main", "production", "2026-11-14T03:00:00Z");
    w.deployment_creator(late, "bob");
    w.status(late, "success", "2026-11-14T03:05:00Z", None);
    w.environment("production", &["carol"], 30);
    let fake = Fake::start(w);
    // The sync job tells anomalies as they are found (`anomaly.*` events); its
    // first pass takes what is already there as the baseline.
    let rx = crate::notify::Receiver::start();
    let told = repo.tmp.path().join("told.toml");
    let secret = repo.tmp.path().join("told.secret");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")?;
    std::fs::write(
        &told,
        format!(
            "version = 1\n[[notify]]\nkind = \"webhook\"\nname = \"sec\"\nurl = \"{}/sec\"\nsecret_file = \"{}\"\nevents = [\"anomaly.*\"]\n",
            rx.url,
            secret.display()
        ),
    )?;
    sync(&repo, &fake, Some(&told))?;
    // Quiet before the weakening.
    let before = anomalies(&repo, &[])?;
    let rules: Vec<&str> = before.iter().filter_map(|f| f["rule"].as_str()).collect();
    assert_eq!(rules, vec!["anomaly.first-deployer", "anomaly.off-hours"], "{before:#?}");
    assert!(before[0]["subject"].as_str().is_some_and(|s| s.contains("production")), "{}", before[0]);
    assert!(
        before[0]["message"].as_str().is_some_and(|m| m.starts_with("mallory deployed to production for the first time")),
        "{}",
        before[0]
    );
    let off = before[1]["message"].as_str().unwrap_or_default();
    assert!(off.starts_with("bob deployed"), "{off}");
    assert!(off.contains("95% of the 221 earlier happened Mon–Fri 09:00–17:00 UTC") && off.contains("Sat 03:00 UTC"), "{off}");

    // Planted: the environment loses its wait timer and gains an approver.
    fake.with_world(|w| w.environment("production", &["carol", "mallory"], 0));
    sync(&repo, &fake, Some(&told))?;
    let got = rx.wait_for("/sec", 1);
    assert_eq!(got.len(), 1, "only the new one is told");
    let event = got[0].json();
    assert_eq!(event["type"], "anomaly.governance", "{event}");
    assert_eq!(event["data"]["answer"], "anomaly", "{event}");
    let after = anomalies(&repo, &[])?;
    assert_eq!(after.len(), 3, "{after:#?}");
    let gov = after.iter().find(|f| f["rule"] == "anomaly.governance").context("governance")?;
    assert_eq!(
        gov["message"].as_str(),
        Some("the protection of production was weakened: may now approve: mallory; wait timer lowered from 30 to 0 min"),
        "{gov}"
    );
    assert_eq!(gov["severity"], "warning");
    assert_eq!(gov["evidence"].as_array().map(Vec::len), Some(2), "both snapshots: {gov}");

    // The thresholds are the policy's: turned off, or a longer history needed, they say nothing.
    let quiet = repo.policy("version = 1\n[review]\noff = [\"anomaly.governance\", \"anomaly.off-hours\"]\nmin_history = 250\n")?;
    assert_eq!(anomalies(&repo, &["--policy", quiet.to_str().context("path")?])?.len(), 0);
    // At the edge: 221 earlier production deployments (the Saturday one sees 221); min_history = 221 still fires.
    let edge = repo.policy("version = 1\n[review]\nmin_history = 221\noff = [\"anomaly.governance\", \"anomaly.first-deployer\"]\n")?;
    assert_eq!(anomalies(&repo, &["--policy", edge.to_str().context("path")?])?.len(), 1);
    let past = repo.policy("version = 1\n[review]\nmin_history = 222\noff = [\"anomaly.governance\", \"anomaly.first-deployer\"]\n")?;
    assert_eq!(anomalies(&repo, &["--policy", past.to_str().context("path")?])?.len(), 0);

    // On the dashboard's window: a tile, linking to the list.
    let (code, out, err) = repo.audit(&["report", "compliance", "--since", "2026-11-01", "--format", "json"])?;
    assert!(code <= 1, "{err}");
    let v: Value = serde_json::from_str(&out)?;
    assert_eq!(v["counts"]["anomalies"], 3, "{}", v["counts"]);
    // Anomalies are counted apart: the one "violation" is the protection change itself (a warning).
    assert_eq!(v["counts"]["violations"], 1, "{}", v["counts"]);
    assert_eq!(v["summary"]["env.protection-changed"], 1, "{}", v["summary"]);
    assert_eq!(code, 1, "that warning exits 1 as before; anomalies alone would not");
    Ok(())
}

/// Pushes through the real server hooks: a new signing key on main, and a
/// burst of refused pushes; a shorter run of refusals says nothing.
#[test]
fn pushes_through_the_hooks_show_a_new_signer_and_a_refusal_burst() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let review =
        "[review]\nmin_history = 3\nlearning_days = 0\nrefusal_burst = 4\nrefusal_window = \"10m\"\noff = [\"anomaly.off-hours\"]\n";
    let roles = "[roles]\npolicy-admin = [\"alice@example.com\"]\n";
    let server = Server::new(&repo, &signing_policy(&format!("{MAIN_RULES}{roles}{review}")), "sha1")?;
    for i in 0..3 {
        repo.commit(&format!("feat: alice {i}"), Sign::Pgp(&k.alice))?;
        assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    }
    let bobs = repo.commit("feat: bob's first", Sign::Pgp(&k.bob))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    repo.commit("feat: alice again", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    // The policy admin commits a policy that makes mallory a break-glass holder.
    std::fs::create_dir_all(repo.path.join("keys"))?;
    std::fs::write(repo.path.join("keys/allowed_signers"), "alice@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\n")?;
    std::fs::write(
        repo.path.join(".git-audit.toml"),
        "version = 1\n[signing]\nssh_allowed_signers = \"keys/allowed_signers\"\n[roles]\nbreakglass = [\"mallory@example.com\"]\n",
    )?;
    let change = repo.commit("chore: on-call break glass", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    // Then only the key file the committed policy loads changes.
    std::fs::write(repo.path.join("keys/allowed_signers"), "mallory@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB\n")?;
    repo.commit("chore: rotate a key", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    // Unsigned work, refused: four times by mallory, three times by eve.
    repo.commit("feat: unsigned", Sign::None)?;
    for who in ["mallory@example.com"; 4].iter().chain(["eve@example.com"; 3].iter()) {
        assert_eq!(push(&repo, &["-q", "origin", "main"], &[("GIT_AUDIT_USER", who)])?.0, 1);
    }
    let ledger = server.ledger();
    let policy = server.policy.to_str().context("path")?.to_string();
    let args = ["--ledger", ledger.to_str().context("path")?, "--policy", &policy];
    let found = anomalies(&repo, &args)?;
    let rules: Vec<&str> = found.iter().filter_map(|f| f["rule"].as_str()).collect();
    assert_eq!(rules, vec!["anomaly.new-signer", "anomaly.refusal-burst", "anomaly.governance", "anomaly.governance"], "{found:#?}");
    let gov = &found[2];
    assert_eq!(gov["subject"].as_str(), Some(format!("refs/heads/main {}", &change[..10]).as_str()), "{gov}");
    assert!(
        gov["message"].as_str().is_some_and(|m| m.ends_with("an unknown pusher changed the policy on refs/heads/main (.git-audit.toml, keys/allowed_signers): adds mallory@example.com to breakglass")),
        "{gov}"
    );
    // A key file the policy loads is the policy too.
    let keyed = &found[3];
    assert_eq!(keyed["rule"], "anomaly.governance");
    assert!(
        keyed["message"].as_str().is_some_and(|m| m.ends_with("changed the policy on refs/heads/main (keys/allowed_signers)")),
        "{keyed}"
    );
    let signer = &found[0];
    assert!(signer["subject"].as_str().is_some_and(|s| s == format!("refs/heads/main {}", &bobs[..10])), "{signer}");
    assert!(signer["message"].as_str().is_some_and(|m| m.contains("for the first time; 3 signed commits by 1 other key(s)")), "{signer}");
    let burst = &found[1];
    assert_eq!(burst["subject"], "mallory@example.com");
    assert_eq!(burst["evidence"].as_array().map(Vec::len), Some(4), "every refusal cited: {burst}");
    assert!(
        burst["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("4 pushes by mallory@example.com were refused in a burst (4 or more within 10 min)")),
        "{burst}"
    );
    // At the edge: with min_history = 4, three signed commits before bob's are not enough.
    let stricter = repo.policy(&signing_policy(&format!("{MAIN_RULES}{roles}{}", review.replace("min_history = 3", "min_history = 4"))))?;
    let args = ["--ledger", ledger.to_str().context("path")?, "--policy", stricter.to_str().context("path")?];
    let found = anomalies(&repo, &args)?;
    assert_eq!(found.iter().filter(|f| f["rule"] == "anomaly.new-signer").count(), 0, "{found:#?}");
    Ok(())
}

fn json_of(repo: &Repo, args: &[&str]) -> Result<Value> {
    let (code, out, err) = repo.audit(args)?;
    anyhow::ensure!(code == 0 || code == 1, "{args:?}: {err}");
    serde_json::from_str(&out).with_context(|| format!("{args:?}: {out}"))
}

/// `git-audit digest`: its numbers are the reports' for the same window, in
/// every format, and `--send` delivers it as a `digest` event of the webhook schema.
#[test]
fn the_digest_says_what_the_reports_say_and_is_sent_where_asked() -> Result<()> {
    let h = crate::reports::history()?;
    let w = ["--since", "2026-07-01", "--until", "2026-07-31"];
    let d = json_of(&h.repo, &[&["digest", "--format", "json"][..], &w].concat())?;
    let deps = json_of(&h.repo, &[&["report", "deployments", "--env", "*", "--format", "json"][..], &w].concat())?;
    let dora = json_of(&h.repo, &[&["report", "dora", "--env", "*", "--format", "json"][..], &w].concat())?;
    let pushes = json_of(&h.repo, &[&["report", "pushes", "--format", "json"][..], &w].concat())?;
    let comp = json_of(&h.repo, &["report", "compliance", "--since", "2026-07-01", "--format", "json"])?;
    let listed = deps["deployments"].as_array().map(Vec::len).unwrap_or(0) as u64;
    assert!(listed >= 5, "{deps}");
    assert_eq!(d["counts"]["deployments"].as_u64(), Some(listed));
    assert_eq!(d["counts"]["failed"], dora["overall"]["failed"], "{} vs {}", d["counts"], dora["overall"]);
    assert_eq!(d["median_time_to_restore_hours"], dora["overall"]["median_time_to_restore_hours"]);
    assert_eq!(d["counts"]["refused_pushes"], pushes["refused"]);
    for k in ["violations", "could_not_verify", "anomalies"] {
        assert_eq!(d["counts"][k], comp["counts"][k], "{k}");
    }
    assert!(
        d["checkpoint"]["tree_size"].as_u64().is_some_and(|n| n > 0) && d["checkpoint"]["root"].as_str().is_some_and(|r| r.len() == 64)
    );
    // Who approved what shipped: as the deployments report lists it.
    let approvers = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().map(|x| x.as_str().or_else(|| x["user"].as_str()).unwrap_or_default().to_string()).collect()
    };
    for (a, b) in d["deployments"].as_array().into_iter().flatten().zip(deps["deployments"].as_array().into_iter().flatten()) {
        assert_eq!((&a["id"], &a["sha"]), (&b["id"], &b["sha"]));
        assert_eq!(approvers(&a["approvers"]), approvers(&b["approvals"]));
    }
    let (code, md, _) = h.repo.audit(&[&["digest"][..], &w].concat())?;
    assert_eq!(code, 0);
    assert!(md.contains("Audit digest from 2026-07-01") && md.contains("Shipped") && md.contains("Computed from"), "{md}");
    let (_, html, _) = h.repo.audit(&[&["digest", "--format", "html"][..], &w].concat())?;
    assert!(html.contains("<html") && html.contains("Refused pushes"), "{html}");

    // --send SINK: one `digest` event, signed, in the webhook schema.
    let rx = crate::notify::Receiver::start();
    let secret = h.repo.tmp.path().join("digest.secret");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")?;
    let policy = h.repo.policy(&format!(
        "version = 1\n[[notify]]\nkind = \"webhook\"\nname = \"review\"\nurl = \"{}/review\"\nsecret_file = \"{}\"\nevents = [\"push.refused\"]\n",
        rx.url,
        secret.display()
    ))?;
    let p = policy.to_str().context("path")?;
    let (code, _, err) = h.repo.audit(&[&["--policy", p, "digest", "--send", "review"][..], &w].concat())?;
    assert_eq!(code, 0, "{err}");
    let got = rx.wait_for("/review", 1);
    assert_eq!(got.len(), 1);
    let body: git_audit::notify::body::Body = serde_json::from_slice(&got[0].body)?;
    assert!(body.kind == "digest" && body.family_matches(), "{body:?}");
    let summary = d["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("deployments (") && body.data.summary.ends_with(summary.split_once(": ").map_or("", |x| x.1)), "{body:?}");
    let (code, _, err) = h.repo.audit(&[&["--policy", p, "digest", "--send", "nosuch"][..], &w].concat())?;
    assert_eq!(code, 2);
    assert!(err.contains("no [[notify]] sink named `nosuch`") && err.contains("review"), "{err}");
    Ok(())
}
