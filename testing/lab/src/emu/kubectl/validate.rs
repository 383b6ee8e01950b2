//! What the API server checks before it stores an object: a mapping for its kind and
//! apiVersion (built-in kinds, APIs removed in the cluster's version, CRDs already
//! established), strict decoding of the fields CNIs and installers use, and the
//! validation rules installers trip over (selectors matching template labels, containers
//! with images, namespaces that exist).

use serde_json::Value;

use crate::emu::cluster::{self, ClusterState, Object};
use crate::emu::schema::{self, Field};

const S: Field = Field::Str;
const I: Field = Field::Int;
const B: Field = Field::Bool;
const A: Field = Field::Any;
const STRS: Field = Field::List(&Field::Str);
const LABELS: Field = Field::Map(&Field::Str);

const META: Field = Field::Obj(&[
    ("name", S),
    ("generateName", S),
    ("namespace", S),
    ("labels", LABELS),
    ("annotations", LABELS),
    ("uid", S),
    ("resourceVersion", S),
    ("generation", I),
    ("creationTimestamp", A),
    ("deletionTimestamp", A),
    ("deletionGracePeriodSeconds", I),
    ("ownerReferences", A),
    ("finalizers", STRS),
    ("managedFields", A),
    ("selfLink", S),
]);

const CONTAINER: Field = Field::Obj(&[
    ("name", S),
    ("image", S),
    ("command", STRS),
    ("args", STRS),
    ("workingDir", S),
    ("ports", A),
    ("envFrom", A),
    ("env", A),
    ("resources", A),
    ("resizePolicy", A),
    ("restartPolicy", S),
    ("volumeMounts", A),
    ("volumeDevices", A),
    ("livenessProbe", A),
    ("readinessProbe", A),
    ("startupProbe", A),
    ("lifecycle", A),
    ("terminationMessagePath", S),
    ("terminationMessagePolicy", S),
    ("imagePullPolicy", S),
    ("securityContext", A),
    ("stdin", B),
    ("stdinOnce", B),
    ("tty", B),
]);

const POD_SPEC: Field = Field::Obj(&[
    ("volumes", A),
    ("initContainers", Field::List(&CONTAINER)),
    ("containers", Field::List(&CONTAINER)),
    ("ephemeralContainers", A),
    ("restartPolicy", S),
    ("terminationGracePeriodSeconds", I),
    ("activeDeadlineSeconds", I),
    ("dnsPolicy", S),
    ("nodeSelector", LABELS),
    ("serviceAccountName", S),
    ("serviceAccount", S),
    ("automountServiceAccountToken", B),
    ("nodeName", S),
    ("hostNetwork", B),
    ("hostPID", B),
    ("hostIPC", B),
    ("shareProcessNamespace", B),
    ("securityContext", A),
    ("imagePullSecrets", A),
    ("hostname", S),
    ("subdomain", S),
    ("affinity", A),
    ("schedulerName", S),
    ("tolerations", A),
    ("hostAliases", A),
    ("priorityClassName", S),
    ("priority", I),
    ("dnsConfig", A),
    ("readinessGates", A),
    ("runtimeClassName", S),
    ("enableServiceLinks", B),
    ("preemptionPolicy", S),
    ("overhead", A),
    ("topologySpreadConstraints", A),
    ("setHostnameAsFQDN", B),
    ("os", A),
    ("hostUsers", B),
    ("schedulingGates", A),
    ("resourceClaims", A),
]);

const TEMPLATE: Field = Field::Obj(&[("metadata", META), ("spec", POD_SPEC)]);
const SELECTOR: Field = Field::Obj(&[("matchLabels", LABELS), ("matchExpressions", A)]);

const DAEMONSET: Field = Field::Obj(&[
    ("apiVersion", S),
    ("kind", S),
    ("metadata", META),
    (
        "spec",
        Field::Obj(&[
            ("selector", SELECTOR),
            ("template", TEMPLATE),
            ("updateStrategy", A),
            ("minReadySeconds", I),
            ("revisionHistoryLimit", I),
        ]),
    ),
    ("status", A),
]);

const DEPLOYMENT: Field = Field::Obj(&[
    ("apiVersion", S),
    ("kind", S),
    ("metadata", META),
    (
        "spec",
        Field::Obj(&[
            ("replicas", I),
            ("selector", SELECTOR),
            ("template", TEMPLATE),
            ("strategy", A),
            ("minReadySeconds", I),
            ("revisionHistoryLimit", I),
            ("paused", B),
            ("progressDeadlineSeconds", I),
        ]),
    ),
    ("status", A),
]);

const REPLICASET: Field = Field::Obj(&[
    ("apiVersion", S),
    ("kind", S),
    ("metadata", META),
    (
        "spec",
        Field::Obj(&[
            ("replicas", I),
            ("selector", SELECTOR),
            ("template", TEMPLATE),
            ("minReadySeconds", I),
        ]),
    ),
    ("status", A),
]);

const CONFIGMAP: Field = Field::Obj(&[
    ("apiVersion", S),
    ("kind", S),
    ("metadata", META),
    ("data", LABELS),
    ("binaryData", LABELS),
    ("immutable", B),
]);

const SECRET: Field = Field::Obj(&[
    ("apiVersion", S),
    ("kind", S),
    ("metadata", META),
    ("data", LABELS),
    ("stringData", LABELS),
    ("type", S),
    ("immutable", B),
]);

const SERVICE_ACCOUNT: Field = Field::Obj(&[
    ("apiVersion", S),
    ("kind", S),
    ("metadata", META),
    ("secrets", A),
    ("imagePullSecrets", A),
    ("automountServiceAccountToken", B),
]);

const ROLE: Field = Field::Obj(&[
    ("apiVersion", S),
    ("kind", S),
    ("metadata", META),
    ("rules", A),
    ("aggregationRule", A),
]);

const BINDING: Field = Field::Obj(&[
    ("apiVersion", S),
    ("kind", S),
    ("metadata", META),
    ("subjects", A),
    ("roleRef", A),
]);

const SPEC_STATUS: Field = Field::Obj(&[
    ("apiVersion", S),
    ("kind", S),
    ("metadata", META),
    ("spec", A),
    ("status", A),
]);

/// A built-in kind: its API versions (with the minor release that removed each), scope
/// and fields.
pub(super) struct Builtin {
    pub kind: &'static str,
    pub versions: &'static [(&'static str, Option<u32>)],
    pub namespaced: bool,
    pub field: &'static Field,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        kind: "Namespace",
        versions: &[("v1", None)],
        namespaced: false,
        field: &SPEC_STATUS,
    },
    Builtin {
        kind: "ServiceAccount",
        versions: &[("v1", None)],
        namespaced: true,
        field: &SERVICE_ACCOUNT,
    },
    Builtin {
        kind: "ConfigMap",
        versions: &[("v1", None)],
        namespaced: true,
        field: &CONFIGMAP,
    },
    Builtin {
        kind: "Secret",
        versions: &[("v1", None)],
        namespaced: true,
        field: &SECRET,
    },
    Builtin {
        kind: "Service",
        versions: &[("v1", None)],
        namespaced: true,
        field: &SPEC_STATUS,
    },
    Builtin {
        kind: "Pod",
        versions: &[("v1", None)],
        namespaced: true,
        field: &SPEC_STATUS,
    },
    Builtin {
        kind: "DaemonSet",
        versions: &[
            ("apps/v1", None),
            ("apps/v1beta2", Some(16)),
            ("extensions/v1beta1", Some(16)),
        ],
        namespaced: true,
        field: &DAEMONSET,
    },
    Builtin {
        kind: "Deployment",
        versions: &[
            ("apps/v1", None),
            ("apps/v1beta2", Some(16)),
            ("apps/v1beta1", Some(16)),
            ("extensions/v1beta1", Some(16)),
        ],
        namespaced: true,
        field: &DEPLOYMENT,
    },
    Builtin {
        kind: "ReplicaSet",
        versions: &[
            ("apps/v1", None),
            ("apps/v1beta2", Some(16)),
            ("extensions/v1beta1", Some(16)),
        ],
        namespaced: true,
        field: &REPLICASET,
    },
    Builtin {
        kind: "ClusterRole",
        versions: &[
            ("rbac.authorization.k8s.io/v1", None),
            ("rbac.authorization.k8s.io/v1beta1", Some(22)),
        ],
        namespaced: false,
        field: &ROLE,
    },
    Builtin {
        kind: "Role",
        versions: &[
            ("rbac.authorization.k8s.io/v1", None),
            ("rbac.authorization.k8s.io/v1beta1", Some(22)),
        ],
        namespaced: true,
        field: &ROLE,
    },
    Builtin {
        kind: "ClusterRoleBinding",
        versions: &[
            ("rbac.authorization.k8s.io/v1", None),
            ("rbac.authorization.k8s.io/v1beta1", Some(22)),
        ],
        namespaced: false,
        field: &BINDING,
    },
    Builtin {
        kind: "RoleBinding",
        versions: &[
            ("rbac.authorization.k8s.io/v1", None),
            ("rbac.authorization.k8s.io/v1beta1", Some(22)),
        ],
        namespaced: true,
        field: &BINDING,
    },
    Builtin {
        kind: "CustomResourceDefinition",
        versions: &[
            ("apiextensions.k8s.io/v1", None),
            ("apiextensions.k8s.io/v1beta1", Some(22)),
        ],
        namespaced: false,
        field: &SPEC_STATUS,
    },
    Builtin {
        kind: "PodSecurityPolicy",
        versions: &[("policy/v1beta1", Some(25))],
        namespaced: false,
        field: &SPEC_STATUS,
    },
    Builtin {
        kind: "PodDisruptionBudget",
        versions: &[("policy/v1", None), ("policy/v1beta1", Some(25))],
        namespaced: true,
        field: &SPEC_STATUS,
    },
    Builtin {
        kind: "PriorityClass",
        versions: &[("scheduling.k8s.io/v1", None)],
        namespaced: false,
        field: &Field::Any,
    },
    Builtin {
        kind: "StorageClass",
        versions: &[("storage.k8s.io/v1", None)],
        namespaced: false,
        field: &Field::Any,
    },
    Builtin {
        kind: "NetworkPolicy",
        versions: &[("networking.k8s.io/v1", None)],
        namespaced: true,
        field: &SPEC_STATUS,
    },
    Builtin {
        kind: "APIService",
        versions: &[("apiregistration.k8s.io/v1", None)],
        namespaced: false,
        field: &SPEC_STATUS,
    },
    Builtin {
        kind: "ValidatingWebhookConfiguration",
        versions: &[("admissionregistration.k8s.io/v1", None)],
        namespaced: false,
        field: &Field::Any,
    },
    Builtin {
        kind: "MutatingWebhookConfiguration",
        versions: &[("admissionregistration.k8s.io/v1", None)],
        namespaced: false,
        field: &Field::Any,
    },
];

pub(super) fn builtin(kind: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.kind == kind)
}

/// Where an accepted object goes.
pub(super) struct Key {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

fn no_match(name: &str, namespace: &str, source: &str, kind: &str, api: &str) -> String {
    format!(
        "error: resource mapping not found for name: \"{name}\" namespace: \"{namespace}\" from \"{source}\": no matches for kind \"{kind}\" in version \"{api}\"\nensure CRDs are installed first"
    )
}

fn labels_of(v: Option<&Value>) -> std::collections::BTreeMap<String, String> {
    v.and_then(|l| l.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn go_map(m: &std::collections::BTreeMap<String, String>) -> String {
    let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
    format!("map[string]string{{{}}}", inner.join(", "))
}

/// Rules of the workload kinds: a selector that selects the template, containers with
/// names and images.
fn workload_errors(doc: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let selector = doc.pointer("/spec/selector");
    let template_labels = labels_of(doc.pointer("/spec/template/metadata/labels"));
    match selector {
        None | Some(Value::Null) => errs.push("spec.selector: Required value".to_string()),
        Some(sel) => {
            let wanted = labels_of(sel.get("matchLabels"));
            let exprs = sel.get("matchExpressions").and_then(|e| e.as_array());
            if wanted.is_empty() && exprs.is_none_or(|e| e.is_empty()) {
                errs.push("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment".to_string());
            } else if !wanted
                .iter()
                .all(|(k, v)| template_labels.get(k) == Some(v))
            {
                errs.push(format!(
                    "spec.template.metadata.labels: Invalid value: {}: `selector` does not match template `labels`",
                    go_map(&template_labels)
                ));
            }
        }
    }
    let containers = doc
        .pointer("/spec/template/spec/containers")
        .and_then(|c| c.as_array());
    match containers {
        None => errs.push("spec.template.spec.containers: Required value".to_string()),
        Some(list) if list.is_empty() => {
            errs.push("spec.template.spec.containers: Required value".to_string())
        }
        Some(list) => {
            for (i, c) in list.iter().enumerate() {
                if cluster::str_at(c, &["name"]).is_empty() {
                    errs.push(format!(
                        "spec.template.spec.containers[{i}].name: Required value"
                    ));
                }
                if cluster::str_at(c, &["image"]).is_empty() {
                    errs.push(format!(
                        "spec.template.spec.containers[{i}].image: Required value"
                    ));
                }
            }
        }
    }
    errs
}

/// Validates one object and fills in its namespace; the error is kubectl's message.
pub(super) fn object(
    doc: &mut Value,
    source: &str,
    default_ns: &str,
    minor: u32,
    crds: &[Object],
    state: &ClusterState,
) -> Result<Key, String> {
    let api = cluster::str_at(doc, &["apiVersion"]).to_string();
    let kind = cluster::str_at(doc, &["kind"]).to_string();
    let name = cluster::str_at(doc, &["metadata", "name"]).to_string();
    let mut missing = Vec::new();
    if api.is_empty() {
        missing.push("apiVersion not set");
    }
    if kind.is_empty() {
        missing.push("kind not set");
    }
    if !missing.is_empty() {
        return Err(format!(
            "error: error validating \"{source}\": error validating data: [{}]; if you choose to ignore these errors, turn validation off with --validate=false",
            missing.join(", ")
        ));
    }
    let given_ns = cluster::str_at(doc, &["metadata", "namespace"]).to_string();
    let (namespaced, field): (bool, &Field) = match builtin(&kind) {
        Some(b) => match b.versions.iter().find(|(v, _)| *v == api) {
            Some((_, removed)) if removed.is_none_or(|r| minor < r) => (b.namespaced, b.field),
            _ => return Err(no_match(&name, &given_ns, source, &kind, &api)),
        },
        None => {
            let (group, version) = api.split_once('/').unwrap_or(("", api.as_str()));
            let crd = crds.iter().find(|c| {
                cluster::str_at(&c.body, &["spec", "group"]) == group
                    && cluster::str_at(&c.body, &["spec", "names", "kind"]) == kind
                    && c.body
                        .pointer("/spec/versions")
                        .and_then(|v| v.as_array())
                        .is_some_and(|vs| {
                            vs.iter().any(|v| {
                                cluster::str_at(v, &["name"]) == version
                                    && v.get("served").and_then(|s| s.as_bool()).unwrap_or(true)
                            })
                        })
            });
            match crd {
                Some(c) => (
                    cluster::str_at(&c.body, &["spec", "scope"]) != "Cluster",
                    &Field::Any,
                ),
                None => return Err(no_match(&name, &given_ns, source, &kind, &api)),
            }
        }
    };
    if name.is_empty() {
        return Err(format!(
            "error: error when retrieving current configuration of:\nResource: \"{}\", GroupVersionKind: \"{api}, Kind={kind}\"\nName: \"\", Namespace: \"{}\"\nfrom server for: \"{source}\": resource name may not be empty",
            super::output::plural(&kind),
            if namespaced { default_ns } else { "" }
        ));
    }
    let problems = schema::check(doc, field, &kind);
    if !problems.is_empty() {
        let version = api.rsplit('/').next().unwrap_or("");
        return Err(format!(
            "Error from server (BadRequest): error when creating \"{source}\": {kind} in version \"{version}\" cannot be handled as a {kind}: {}",
            problems.message()
        ));
    }
    let namespace = if namespaced {
        let ns = if given_ns.is_empty() {
            default_ns.to_string()
        } else {
            given_ns
        };
        if state.object("Namespace", "", &ns).is_none() {
            return Err(format!(
                "Error from server (NotFound): error when creating \"{source}\": namespaces \"{ns}\" not found"
            ));
        }
        if let Some(meta) = doc.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        }
        ns
    } else {
        String::new()
    };
    if kind == "DaemonSet" || kind == "Deployment" || kind == "ReplicaSet" {
        let errs = workload_errors(doc);
        if !errs.is_empty() {
            let detail = if errs.len() == 1 {
                errs[0].clone()
            } else {
                format!("\n* {}", errs.join("\n* "))
            };
            return Err(format!(
                "Error from server (Invalid): error when creating \"{source}\": The {kind} \"{name}\" is invalid: {detail}"
            ));
        }
    }
    Ok(Key {
        api_version: api,
        kind,
        namespace,
        name,
    })
}
