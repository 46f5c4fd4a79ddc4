//! What the Auth schema must look like (`sql/expected-schema.yaml`, from docs/schema.md), as data.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Deserialize;

const EXPECTED: &str = include_str!("../../sql/expected-schema.yaml");

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expected {
    pub updated_at_function: String,
    pub tables: BTreeMap<String, Table>,
    pub reference_data: BTreeMap<String, Vec<String>>,
    pub sample_accounts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Table {
    /// column → "type" or "type not null"
    pub columns: BTreeMap<String, String>,
    pub primary_key: Vec<String>,
    #[serde(default)]
    pub unique: Vec<Vec<String>>,
    /// "col -> table(col) on delete ACTION"
    #[serde(default)]
    pub foreign_keys: Vec<String>,
    /// column → the values its CHECK allows
    #[serde(default)]
    pub checks: BTreeMap<String, Vec<String>>,
    /// "a, b" column lists; "a where" for a partial index
    #[serde(default)]
    pub indexes: Vec<String>,
    #[serde(default)]
    pub updated_at_trigger: bool,
}

pub fn load() -> Result<Expected> {
    serde_yaml::from_str(EXPECTED).context("sql/expected-schema.yaml does not parse (a bug)")
}

/// "character varying(50) not null" → ("character varying(50)", true)
pub fn split_not_null(spec: &str) -> (&str, bool) {
    match spec.strip_suffix(" not null") {
        Some(t) => (t, true),
        None => (spec, false),
    }
}
