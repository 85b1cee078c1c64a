//! `report sources`: each protected ref's SLSA source level, from its latest
//! attestation, and since when that level's controls have all held.

use serde_json::json;

use super::{Document, ReportError, Section};
use crate::git::short_id;
use crate::ledger::Ledger;

pub fn sources(ledger: &Ledger) -> Result<Document, ReportError> {
    let levels = crate::slsa::ref_levels(ledger)?;
    let rows: Vec<Vec<String>> = levels
        .iter()
        .map(|l| {
            vec![
                l.refname.clone(),
                short_id(&l.commit).to_string(),
                l.level_name.clone(),
                l.since.clone().unwrap_or_else(|| "—".into()),
                l.attested.clone(),
                l.seq.to_string(),
            ]
        })
        .collect();
    Ok(Document {
        title: "SLSA source levels".into(),
        sections: vec![Section::new("Protected refs", &["ref", "tip", "level", "since", "attested", "seq"], rows)],
        charts: Vec::new(),
        series: Vec::new(),
        json: json!({"refs": levels}),
    })
}
