//! A typed walk over a spanned TOML tree that collects every problem it meets.
//!
//! serde stops at the first unknown field or wrong type; a user fixing an
//! inventory wants them all at once. The walk reads each table against the
//! list of keys it allows, reports unknown keys with a suggestion, reports
//! values of the wrong type with their place, and goes on.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diagnostic::{did_you_mean, Diagnostic};

/// A value with the byte span it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub span: Range<usize>,
}

/// Collects diagnostics during the walk.
#[derive(Default)]
pub(crate) struct Reader {
    pub diagnostics: Vec<Diagnostic>,
}

/// One TOML table being read: its keys, its name for messages, its span.
pub(crate) struct Table<'t, 'i> {
    entries: &'t DeTable<'i>,
    /// How the user names this table in a message: `[cluster]`, `host "n1"`.
    pub what: String,
    pub span: Range<usize>,
}

impl Reader {
    pub fn error(&mut self, message: impl Into<String>, span: Option<Range<usize>>) {
        self.diagnostics.push(Diagnostic::new(message, span));
    }

    pub fn error_help(
        &mut self,
        message: impl Into<String>,
        span: Option<Range<usize>>,
        help: impl Into<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::new(message, span).with_help(help));
    }

    /// Opens `value` as a table named `what`, reporting keys not in `allowed`.
    pub fn table<'t, 'i>(
        &mut self,
        value: &'t Spanned<DeValue<'i>>,
        what: impl Into<String>,
        allowed: &[&str],
    ) -> Option<Table<'t, 'i>> {
        let table = self.open_table(value, what)?;
        self.unknown_keys(&table, allowed);
        Some(table)
    }

    /// Opens `value` as a table without checking its keys; the caller calls
    /// [`Reader::unknown_keys`] once it knows how to name the table.
    pub fn open_table<'t, 'i>(
        &mut self,
        value: &'t Spanned<DeValue<'i>>,
        what: impl Into<String>,
    ) -> Option<Table<'t, 'i>> {
        let what = what.into();
        match value.get_ref() {
            DeValue::Table(entries) => Some(Table {
                entries,
                what,
                span: value.span(),
            }),
            other => {
                self.error(
                    format!("{what} must be a table, found {}", type_name(other)),
                    Some(value.span()),
                );
                None
            }
        }
    }

    /// Opens the document's top-level table.
    pub fn root<'t, 'i>(
        &mut self,
        doc: &'t Spanned<DeTable<'i>>,
        allowed: &[&str],
    ) -> Table<'t, 'i> {
        let table = Table {
            entries: doc.get_ref(),
            what: "the inventory".to_string(),
            span: doc.span(),
        };
        self.unknown_keys(&table, allowed);
        table
    }

    /// Reports every key of `table` that is not in `allowed`, with a suggestion.
    pub fn unknown_keys(&mut self, table: &Table<'_, '_>, allowed: &[&str]) {
        for (key, _) in table.entries.iter() {
            let name: &str = key.get_ref();
            if allowed.contains(&name) {
                continue;
            }
            let message = format!("unknown field `{name}` in {}", table.what);
            match did_you_mean(name, allowed.iter().copied()) {
                Some(help) => self.error_help(message, Some(key.span()), help),
                None => self.error_help(
                    message,
                    Some(key.span()),
                    format!("the fields of {} are: {}", table.what, allowed.join(", ")),
                ),
            }
        }
    }

    /// A required string.
    pub fn required_str(&mut self, table: &Table<'_, '_>, key: &str) -> Option<Located<String>> {
        if table.get(key).is_none() {
            self.error(
                format!("{} is missing the required field `{key}`", table.what),
                Some(table.header_span()),
            );
            return None;
        }
        self.str(table, key)
    }

    /// An optional string.
    pub fn str(&mut self, table: &Table<'_, '_>, key: &str) -> Option<Located<String>> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(Located {
                value: s.to_string(),
                span: value.span(),
            }),
            other => {
                self.wrong_type(table, key, "a string", other, value.span());
                None
            }
        }
    }

    /// An optional boolean.
    pub fn bool(&mut self, table: &Table<'_, '_>, key: &str) -> Option<Located<bool>> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(Located {
                value: *b,
                span: value.span(),
            }),
            other => {
                self.wrong_type(table, key, "true or false", other, value.span());
                None
            }
        }
    }

    /// An optional integer.
    pub fn int(&mut self, table: &Table<'_, '_>, key: &str) -> Option<Located<i64>> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Integer(i) => {
                match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                    Ok(n) => Some(Located {
                        value: n,
                        span: value.span(),
                    }),
                    Err(_) => {
                        self.error(
                            format!("`{key}` in {} is out of range", table.what),
                            Some(value.span()),
                        );
                        None
                    }
                }
            }
            other => {
                self.wrong_type(table, key, "a whole number", other, value.span());
                None
            }
        }
    }

    /// An optional array of strings.
    pub fn str_list(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
    ) -> Option<Located<Vec<Located<String>>>> {
        let value = table.get(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(
                table,
                key,
                "a list of strings",
                value.get_ref(),
                value.span(),
            );
            return None;
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(Located {
                    value: s.to_string(),
                    span: item.span(),
                }),
                other => self.error(
                    format!(
                        "`{key}` in {} must hold only strings, found {}",
                        table.what,
                        type_name(other)
                    ),
                    Some(item.span()),
                ),
            }
        }
        Some(Located {
            value: out,
            span: value.span(),
        })
    }

    /// An optional table of string values (`labels = { disktype = "ssd" }`).
    pub fn str_map(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
    ) -> Option<Vec<(Located<String>, Located<String>)>> {
        let value = table.get(key)?;
        let DeValue::Table(entries) = value.get_ref() else {
            self.wrong_type(
                table,
                key,
                "a table of strings",
                value.get_ref(),
                value.span(),
            );
            return None;
        };
        let mut out = Vec::new();
        for (k, v) in entries.iter() {
            let key_text: &str = k.get_ref();
            match v.get_ref() {
                DeValue::String(s) => out.push((
                    Located {
                        value: key_text.to_string(),
                        span: k.span(),
                    },
                    Located {
                        value: s.to_string(),
                        span: v.span(),
                    },
                )),
                other => self.error(
                    format!(
                        "`{key}.{key_text}` in {} must be a string, found {}",
                        table.what,
                        type_name(other)
                    ),
                    Some(v.span()),
                ),
            }
        }
        Some(out)
    }

    fn wrong_type(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        expected: &str,
        found: &DeValue<'_>,
        span: Range<usize>,
    ) {
        self.error(
            format!(
                "`{key}` in {} must be {expected}, found {}",
                table.what,
                type_name(found)
            ),
            Some(span),
        );
    }
}

impl<'t, 'i> Table<'t, 'i> {
    /// The raw value under `key`.
    pub fn get(&self, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
        self.entries
            .iter()
            .find(|(k, _)| {
                let name: &str = k.get_ref();
                name == key
            })
            .map(|(_, v)| v)
    }

    /// A short span at the table's start, for "missing field" messages: pointing
    /// at a whole table would put the column at its first line anyway.
    pub fn header_span(&self) -> Range<usize> {
        self.span.start..self.span.start
    }
}

/// The TOML type of a value, as a user would say it.
pub(crate) fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "a whole number",
        DeValue::Float(_) => "a decimal number",
        DeValue::Boolean(_) => "true or false",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}
