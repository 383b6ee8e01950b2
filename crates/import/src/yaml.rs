//! A YAML document as a tree of [`Node`]s that remember their line, so that every
//! setting read from a Kubespray file can be named by `file:line`.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::ansible::VAULT;

/// A YAML or INI value, with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Scalar(String, usize),
    List(Vec<Node>, usize),
    Map(Vec<(String, usize, Node)>, usize),
}

impl Node {
    pub(crate) fn line(&self) -> usize {
        match self {
            Node::Scalar(_, l) | Node::List(_, l) | Node::Map(_, l) => *l,
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries, _) => entries.iter().find(|(k, _, _)| k == key).map(|e| &e.2),
            _ => None,
        }
    }

    pub(crate) fn entries(&self) -> &[(String, usize, Node)] {
        match self {
            Node::Map(entries, _) => entries,
            _ => &[],
        }
    }

    pub(crate) fn scalar(&self) -> Option<&str> {
        match self {
            Node::Scalar(s, _) => Some(s),
            _ => None,
        }
    }

    /// The value as YAML-ish text, for the list of what was not carried.
    pub(crate) fn text(&self) -> String {
        match self {
            Node::Scalar(s, _) => s.clone(),
            Node::List(items, _) => format!(
                "[{}]",
                items.iter().map(Node::text).collect::<Vec<_>>().join(", ")
            ),
            Node::Map(entries, _) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, _, v)| format!("{k}: {}", v.text()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Builds [`Node`]s from the parser's events.
#[derive(Default)]
struct TreeBuilder {
    /// Open collections: a list's items, or a map's entries and its pending key.
    stack: Vec<Open>,
    root: Option<Node>,
}

enum Open {
    List(Vec<Node>, usize),
    Map(Vec<(String, usize, Node)>, Option<(String, usize)>, usize),
}

impl TreeBuilder {
    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node)
                }
            }
            Some(Open::List(items, _)) => items.push(node),
            Some(Open::Map(entries, key, _)) => match key.take() {
                None => {
                    // A key: only scalar keys mean anything in an Ansible inventory.
                    let line = node.line();
                    *key = Some((node.text(), line));
                }
                Some((k, line)) => entries.push((k, line, node)),
            },
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(value, _, _, tag) => {
                // `~` and `null` are YAML's null: Ansible reads `node1:` as a host with no vars.
                let value = if matches!(value.as_str(), "~" | "null" | "Null" | "NULL") {
                    String::new()
                } else if tag.is_some_and(|t| t.suffix == "vault") {
                    // `!vault |` holds a secret encrypted with ansible-vault: never shown.
                    VAULT.to_string()
                } else {
                    value
                };
                self.push(Node::Scalar(value, line))
            }
            Event::Alias(_) => self.push(Node::Scalar(String::new(), line)),
            Event::SequenceStart(..) => self.stack.push(Open::List(Vec::new(), line)),
            Event::MappingStart(..) => self.stack.push(Open::Map(Vec::new(), None, line)),
            Event::SequenceEnd => {
                if let Some(Open::List(items, l)) = self.stack.pop() {
                    self.push(Node::List(items, l));
                }
            }
            Event::MappingEnd => {
                if let Some(Open::Map(entries, _, l)) = self.stack.pop() {
                    self.push(Node::Map(entries, l));
                }
            }
            _ => {}
        }
    }
}

pub(crate) fn parse_yaml(text: &str) -> Result<Option<Node>, String> {
    let mut builder = TreeBuilder::default();
    Parser::new_from_str(text)
        .load(&mut builder, false)
        .map_err(|e| e.to_string())?;
    Ok(builder.root)
}
