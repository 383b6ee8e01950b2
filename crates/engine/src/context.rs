//! A host's template context, kept so that what hosts have alike is held once.
//!
//! A context is a JSON object: the inventory's settings, the host's facts, values
//! derived from both. Most of its members are the same for every host of a cluster
//! (the runtime's configuration, the package sources, the kubeadm settings), and a
//! run holds every host's context at once, with every host's connection: at a
//! thousand hosts, a copy each was some 13 MB. A [`ContextPool`] keeps one copy of
//! each distinct member value, which the contexts share by reference.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::{Map, Value};

/// A host's template context: an object whose members may be shared with other
/// hosts' contexts (see [`ContextPool`]). Reads as the object it was made from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    members: BTreeMap<String, Arc<Value>>,
}

static NULL: Value = Value::Null;

impl Context {
    /// The member `key`, if the context has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.members.get(key).map(|v| &**v)
    }

    /// Sets the member `key` (a value of this context alone).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        self.members.insert(key.into(), Arc::new(value));
    }

    /// The context as one JSON object, a copy of every member.
    pub fn to_map(&self) -> Map<String, Value> {
        self.members
            .iter()
            .map(|(k, v)| (k.clone(), (**v).clone()))
            .collect()
    }
}

/// A context of the object's members (none, when `value` is not an object), shared
/// with no other context.
impl From<Value> for Context {
    fn from(value: Value) -> Context {
        let Value::Object(map) = value else {
            return Context::default();
        };
        Context {
            members: map.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
        }
    }
}

/// `context["key"]` reads as on the JSON object: `Null` for a member it lacks.
impl std::ops::Index<&str> for Context {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

/// Makes contexts whose equal members are one value, shared.
#[derive(Default)]
pub struct ContextPool {
    /// Distinct member values, by member name and a hash of their JSON text.
    values: HashMap<(String, u64), Vec<Arc<Value>>>,
}

impl ContextPool {
    pub fn new() -> ContextPool {
        ContextPool::default()
    }

    /// The context of the object `value`: each member is the pool's value equal to it,
    /// when the pool has one (it then holds no copy of its own), else it joins the pool.
    pub fn context(&mut self, value: Value) -> Context {
        let Value::Object(map) = value else {
            return Context::default();
        };
        let members = map
            .into_iter()
            .map(|(key, member)| {
                let shared = self.share(&key, member);
                (key, shared)
            })
            .collect();
        Context { members }
    }

    fn share(&mut self, key: &str, member: Value) -> Arc<Value> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        // serde_json writes an object's members in one order (its map's), so equal
        // values have equal text.
        serde_json::to_string(&member)
            .unwrap_or_default()
            .hash(&mut hasher);
        let seen = self
            .values
            .entry((key.to_string(), hasher.finish()))
            .or_default();
        if let Some(same) = seen.iter().find(|v| ***v == member) {
            return same.clone();
        }
        let member = Arc::new(member);
        seen.push(member.clone());
        member
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_members_are_one_value_and_every_context_reads_as_its_object() {
        let mut pool = ContextPool::new();
        let objects = [
            json!({ "host": { "name": "a" }, "runtime": { "config": "x", "n": [1, 2] }, "cni": "m" }),
            json!({ "host": { "name": "b" }, "runtime": { "n": [1, 2], "config": "x" }, "cni": "" }),
            json!({ "host": { "name": "c" }, "runtime": { "config": "x", "n": [1, 2] }, "cni": "" }),
        ];
        let contexts: Vec<Context> = objects.iter().map(|o| pool.context(o.clone())).collect();
        for (context, object) in contexts.iter().zip(&objects) {
            assert_eq!(Value::Object(context.to_map()), *object);
            assert_eq!(context["host"], object["host"]);
            assert_eq!(context["missing"], Value::Null);
        }
        let same = |key: &str, a: usize, b: usize| {
            Arc::ptr_eq(&contexts[a].members[key], &contexts[b].members[key])
        };
        assert!(
            same("runtime", 0, 1) && same("runtime", 1, 2),
            "one runtime"
        );
        assert!(same("cni", 1, 2) && !same("cni", 0, 1));
        assert!(!same("host", 0, 1) && !same("host", 1, 2));
    }

    #[test]
    fn a_member_set_later_is_the_context_s_own() {
        let mut pool = ContextPool::new();
        let mut a = pool.context(json!({ "x": 1 }));
        let b = pool.context(json!({ "x": 1 }));
        a.insert("x", json!(2));
        assert_eq!((a["x"].clone(), b["x"].clone()), (json!(2), json!(1)));
        assert_eq!(Context::from(json!([1])), Context::default());
    }
}
