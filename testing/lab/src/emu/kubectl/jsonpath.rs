//! kubectl's JSONPath templates, the part installers use: `{.a.b}`, `[n]`, `[*]`, `.*`,
//! filters `[?(@.type=="Ready")]`, `{range ...}{end}` and string literals `{"\n"}`.
//! Several results print separated by a space, as kubectl prints them.

use serde_json::Value;

#[derive(Debug)]
enum Part {
    Text(String),
    Expr(String),
    Range(String, Vec<Part>),
}

fn parse(tpl: &str) -> Result<Vec<Part>, String> {
    let mut stack: Vec<(String, Vec<Part>)> = vec![(String::new(), Vec::new())];
    let chars: Vec<char> = tpl.chars().collect();
    let mut i = 0;
    let mut text = String::new();
    while i < chars.len() {
        if chars[i] != '{' {
            text.push(chars[i]);
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let mut quote: Option<char> = None;
        while j < chars.len() {
            match (quote, chars[j]) {
                (None, '"') | (None, '\'') => quote = Some(chars[j]),
                (Some(q), c) if c == q && chars[j - 1] != '\\' => quote = None,
                (None, '}') => break,
                _ => {}
            }
            j += 1;
        }
        if j >= chars.len() {
            return Err("unclosed action".into());
        }
        let inner: String = chars[i + 1..j].iter().collect();
        let inner = inner.trim().to_string();
        let top = &mut stack.last_mut().ok_or("bad template")?.1;
        if !text.is_empty() {
            top.push(Part::Text(std::mem::take(&mut text)));
        }
        if let Some(expr) = inner.strip_prefix("range ") {
            stack.push((expr.trim().to_string(), Vec::new()));
        } else if inner == "end" {
            if stack.len() < 2 {
                return Err("not in range, nothing to end".into());
            }
            let (expr, body) = stack.pop().ok_or("bad template")?;
            stack
                .last_mut()
                .ok_or("bad template")?
                .1
                .push(Part::Range(expr, body));
        } else if (inner.starts_with('"') && inner.ends_with('"') && inner.len() >= 2)
            || (inner.starts_with('\'') && inner.ends_with('\'') && inner.len() >= 2)
        {
            let lit = &inner[1..inner.len() - 1];
            top.push(Part::Text(
                lit.replace("\\n", "\n")
                    .replace("\\t", "\t")
                    .replace("\\\"", "\""),
            ));
        } else {
            top.push(Part::Expr(inner));
        }
        i = j + 1;
    }
    if stack.len() != 1 {
        return Err("range without end".into());
    }
    let (_, mut parts) = stack.pop().ok_or("bad template")?;
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// Evaluates a path against `root` (`$`) and the current item (`@`, or a leading `.`).
fn eval(expr: &str, root: &Value, cur: &Value) -> Result<Vec<Value>, String> {
    let (mut vals, rest) = if let Some(r) = expr.strip_prefix('$') {
        (vec![root.clone()], r)
    } else if let Some(r) = expr.strip_prefix('@') {
        (vec![cur.clone()], r)
    } else {
        (vec![cur.clone()], expr)
    };
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if name.is_empty() {
                    continue;
                }
                vals = vals
                    .iter()
                    .flat_map(|v| -> Vec<Value> {
                        if name == "*" {
                            match v {
                                Value::Object(m) => m.values().cloned().collect(),
                                Value::Array(a) => a.clone(),
                                _ => vec![],
                            }
                        } else {
                            v.get(&name).cloned().into_iter().collect()
                        }
                    })
                    .collect();
            }
            '[' => {
                let mut depth = 0;
                let start = i + 1;
                while i < chars.len() {
                    match chars[i] {
                        '[' => depth += 1,
                        ']' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                let inner: String = chars[start..i.min(chars.len())].iter().collect();
                i += 1;
                vals = index(&vals, inner.trim(), root)?;
            }
            c => {
                return Err(format!(
                    "unrecognized character in action: U+{:04X} '{c}'",
                    c as u32
                ))
            }
        }
    }
    Ok(vals)
}

fn index(vals: &[Value], inner: &str, root: &Value) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for v in vals {
        if inner == "*" {
            match v {
                Value::Array(a) => out.extend(a.iter().cloned()),
                Value::Object(m) => out.extend(m.values().cloned()),
                _ => {}
            }
        } else if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
            let items: Vec<Value> = match v {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            for item in items {
                if filter_matches(filter, &item, root)? {
                    out.push(item);
                }
            }
        } else if let Ok(n) = inner.parse::<i64>() {
            if let Value::Array(a) = v {
                let idx = if n < 0 { a.len() as i64 + n } else { n };
                if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                    out.push(x.clone());
                } else {
                    return Err(format!(
                        "array index out of bounds: index {n}, length {}",
                        a.len()
                    ));
                }
            }
        } else {
            let key = inner.trim_matches(|c| c == '\'' || c == '"');
            if let Some(x) = v.get(key) {
                out.push(x.clone());
            }
        }
    }
    Ok(out)
}

fn literal(s: &str) -> Value {
    let s = s.trim();
    if (s.starts_with('"') && s.ends_with('"') || s.starts_with('\'') && s.ends_with('\''))
        && s.len() >= 2
    {
        Value::String(s[1..s.len() - 1].to_string())
    } else if let Ok(n) = s.parse::<f64>() {
        serde_json::json!(n)
    } else if s == "true" || s == "false" {
        Value::Bool(s == "true")
    } else {
        Value::String(s.to_string())
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn filter_matches(filter: &str, item: &Value, root: &Value) -> Result<bool, String> {
    for op in ["==", "!="] {
        if let Some((l, r)) = filter.split_once(op) {
            let left = eval(l.trim(), root, item)?;
            let right = literal(r);
            let eq = left.iter().any(|v| same(v, &right));
            return Ok(if op == "==" { eq } else { !eq });
        }
    }
    Ok(!eval(filter.trim(), root, item)?.is_empty())
}

fn print(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn exec(parts: &[Part], root: &Value, cur: &Value, out: &mut String) -> Result<(), String> {
    for p in parts {
        match p {
            Part::Text(t) => out.push_str(t),
            Part::Expr(e) => {
                let vals = eval(e, root, cur)?;
                out.push_str(&vals.iter().map(print).collect::<Vec<_>>().join(" "));
            }
            Part::Range(e, body) => {
                for item in eval(e, root, cur)? {
                    exec(body, root, &item, out)?;
                }
            }
        }
    }
    Ok(())
}

/// Renders a template against a document.
pub(super) fn render(tpl: &str, doc: &Value) -> Result<String, String> {
    let parts = parse(tpl)?;
    let mut out = String::new();
    exec(&parts, doc, doc, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_filters_and_ranges() {
        let doc = json!({"items": [
            {"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "b"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}]});
        assert_eq!(
            render("{.items[*].metadata.name}", &doc).expect("ok"),
            "a b"
        );
        assert_eq!(render("{.items[0].metadata.name}", &doc).expect("ok"), "a");
        assert_eq!(
            render("{range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}", &doc).expect("ok"),
            "a=True\nb=False\n"
        );
        assert!(render("{.items[", &doc).is_err());
    }
}
