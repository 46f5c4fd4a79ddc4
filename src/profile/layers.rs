//! Values laid over the embedded profile: a layer (a values file, the release's record) read
//! and checked against the profile's keys, and how layers merge (mappings key by key, everything
//! else replaced, as Helm merges values).

use std::path::Path;

use anyhow::Result;
use serde_yaml::Value;

use crate::error::{ExitCode, user_error};

/// Keys laid over the embedded profile, and where they come from (named in every refusal).
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// "values file PATH", "the values recorded in ConfigMap NAME", …
    pub source: String,
    /// A mapping of profile keys.
    pub values: Value,
}

impl Layer {
    pub fn new(source: impl Into<String>, values: Value) -> Layer {
        Layer {
            source: source.into(),
            values,
        }
    }

    /// A values file (`--values FILE`): a YAML mapping of profile keys (empty: none).
    pub fn from_file(path: &Path) -> Result<Layer> {
        let text = crate::files::read_text(path).map_err(|e| {
            user_error(format!("cannot read values file {}: {e}", path.display()))
                .hint("check the path given to --values")
                .exit(ExitCode::Usage)
        })?;
        let layer = Layer::parse(format!("values file {}", path.display()), &text)?;
        Ok(layer)
    }

    /// A layer from YAML text; `source` names it in refusals.
    pub fn parse(source: String, text: &str) -> Result<Layer> {
        let value: Value = parse_yaml(text).map_err(|e| {
            user_error(format!("{source} is not valid YAML: {e}"))
                .hint("fix the YAML syntax at the position shown")
                .exit(ExitCode::Usage)
        })?;
        let values = match value {
            Value::Mapping(_) => value,
            Value::Null => Value::Mapping(Default::default()),
            _ => {
                return Err(
                    user_error(format!("{source} must be a mapping of profile keys"))
                        .hint("write it like the profile, e.g. `storage: {className: managed-csi}`")
                        .exit(ExitCode::Usage)
                        .into(),
                );
            }
        };
        Ok(Layer { source, values })
    }

    /// Whether this layer sets the dotted `key` (or a key below it).
    pub fn sets(&self, key: &str) -> bool {
        let mut node = &self.values;
        for part in key.split('.') {
            let part = part.split('[').next().unwrap_or(part);
            match node.get(part) {
                Some(inner) => node = inner,
                None => return false,
            }
        }
        true
    }

    /// A usage error about this layer: "SOURCE: what".
    pub(super) fn refusal(&self, what: String) -> crate::error::UserError {
        user_error(format!("{}: {what}", self.source)).exit(ExitCode::Usage)
    }
}

/// The most a values layer may hold: what a values file may (1 MiB).
pub const LAYER_LIMIT: usize = crate::files::LIMIT as usize;

/// YAML a user wrote (a values file, a release's record), read within bounds: at most
/// [`LAYER_LIMIT`] bytes, and the nesting, node and alias budget of serde-saphyr (nesting 64
/// deep), which reads in linear time; only then serde_yaml, whose parser takes quadratic time on
/// deep nesting (200 KB of `[` took minutes). The error names the line and column, never the
/// text there.
pub fn parse_yaml(text: &str) -> std::result::Result<Value, String> {
    if text.len() > LAYER_LIMIT {
        return Err(format!(
            "it holds {} bytes, more than {} MiB",
            text.len(),
            LAYER_LIMIT / (1024 * 1024)
        ));
    }
    if let Err(e) = serde_saphyr::from_str::<serde::de::IgnoredAny>(text) {
        let at = e
            .location()
            .map(|l| format!(" at line {} column {}", l.line(), l.column()))
            .unwrap_or_default();
        let why = match e.to_string() {
            t if t.contains("budget breached") => {
                "nested too deep, or too many values (the bounds of a values file)".to_string()
            }
            // "error: line L column C: what": the what (the location is said after it).
            _ => {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default();
                let first = first.strip_prefix("error: ").unwrap_or(first);
                match first.split_once(": ") {
                    Some((at, what)) if at.starts_with("line ") => what.to_string(),
                    _ => first.to_string(),
                }
            }
        };
        return Err(format!("{}{at}", crate::error::shown(&why)));
    }
    serde_yaml::from_str(text).map_err(|e| e.to_string())
}

/// `over` laid onto `base` (both mappings of profile keys): what both layers together set.
pub fn merged(base: &Value, over: &Value) -> Value {
    let mut out = base.clone();
    merge(&mut out, over.clone());
    out
}

/// What a layer may not do to the profile it is laid over.
#[derive(Debug, PartialEq)]
pub(super) enum Misfit {
    /// A key the profile does not have (its dotted path).
    Unknown(String),
    /// Null, a list or one value where the profile has a mapping (its path, what was found).
    NotAMapping(String, &'static str),
}

/// Every key of `overrides` must exist in `base` (at the same place), and where `base` has a
/// mapping, `overrides` must have one too. Returns the first misfit, in the layer's order.
pub(super) fn check_keys(base: &Value, overrides: &Value, prefix: &str) -> Result<(), Misfit> {
    let (Value::Mapping(b), Value::Mapping(o)) = (base, overrides) else {
        return Ok(());
    };
    for (key, value) in o {
        let name = key
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{key:?}"));
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match b.get(key) {
            Some(Value::Mapping(_)) if !value.is_mapping() => {
                return Err(Misfit::NotAMapping(path, yaml_kind(value)));
            }
            // Free-form label maps accept any key.
            Some(inner) if path != "networkPolicy.allowFromPodLabels" => {
                check_keys(inner, value, &path)?
            }
            Some(_) => {}
            // Written by `upgrade` only, so in no embedded profile; an in-cluster key.
            None if path == "dataSet" && b.contains_key("image") => {}
            None => return Err(Misfit::Unknown(path)),
        }
    }
    Ok(())
}

fn yaml_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

pub(super) fn unknown_key(layer: &Layer, key: &str, base: &Value) -> anyhow::Error {
    let parent = key.rsplit_once('.').map(|(p, _)| p);
    let mut node = base;
    for part in parent.into_iter().flat_map(|p| p.split('.')) {
        node = node.get(part).unwrap_or(node);
    }
    let known: Vec<String> = match node {
        Value::Mapping(m) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    };
    layer
        .refusal(format!("unknown key `{}`", crate::error::shown(key)))
        .hint(format!("known keys here: {}", known.join(", ")))
        .into()
}

/// Lay `over` onto `base`: mappings merge key by key, everything else replaces.
pub(super) fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}
