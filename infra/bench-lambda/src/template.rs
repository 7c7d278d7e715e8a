//! Each function's configuration read from the SAM template, as CloudFormation would deploy
//! it: Timeout, MemorySize, log format and Environment (Globals merged), with the intrinsics
//! the template uses (`!Ref`, `!If`, `!Sub`, `!Join`, `!Split` and the conditions) resolved
//! against parameter defaults or deploy-time values. Read rather than copied so the bench
//! starts each binary with exactly the variables the template gives it.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

pub struct Template {
    root: Value,
}

/// What `sam deploy` would be given: the stack name, parameter values (the template's
/// required ones have no default) and how a resource's `!Ref` reads (its physical name).
pub struct Deploy<'a> {
    pub stack: &'a str,
    pub parameters: &'a BTreeMap<&'a str, String>,
    pub physical_name: &'a dyn Fn(&str) -> String,
}

#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub timeout_secs: u64,
    pub memory_mb: u64,
    pub json_logs: bool,
    /// `AWS::NoValue` variables are left out, as CloudFormation does.
    pub env: BTreeMap<String, String>,
}

/// A resolved intrinsic: a string, a list (`CommaDelimitedList`, `!Split`) or nothing.
#[derive(Debug, Clone, PartialEq)]
enum Resolved {
    Text(String),
    List(Vec<String>),
    NoValue,
}

impl Resolved {
    fn text(self) -> String {
        match self {
            Self::Text(s) => s,
            Self::List(items) => items.join(","),
            Self::NoValue => String::new(),
        }
    }
}

/// `!Tag value` as (`Tag`, value); the tag's Display includes the `!`.
fn tagged(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_string(),
            &t.value,
        )),
        _ => None,
    }
}

fn items(value: &Value, what: &str) -> Result<Vec<Value>, String> {
    value
        .as_sequence()
        .cloned()
        .ok_or_else(|| format!("{what}: expected a list, got {value:?}"))
}

impl Template {
    /// # Errors
    /// The file cannot be read or is not YAML.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let root =
            serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { root })
    }

    /// The configuration of the function resource `logical_id` (`WebhookFunction`).
    ///
    /// # Errors
    /// No such function, or an intrinsic this reader does not resolve (`!GetAtt` in an
    /// environment variable, a required parameter without a value).
    pub fn function(
        &self,
        logical_id: &str,
        deploy: &Deploy<'_>,
    ) -> Result<FunctionConfig, String> {
        let properties = self.root["Resources"]
            .get(logical_id)
            .map(|r| &r["Properties"])
            .ok_or_else(|| format!("no resource {logical_id} in the template"))?;
        let globals = &self.root["Globals"]["Function"];
        let number = |key: &str, default: u64| -> Result<u64, String> {
            let value = properties.get(key).or_else(|| globals.get(key));
            match value {
                None => Ok(default),
                Some(v) => self
                    .eval(v, deploy)?
                    .text()
                    .parse()
                    .map_err(|e| format!("{logical_id}.{key}: {e}")),
            }
        };
        let mut env = BTreeMap::new();
        for source in [globals, properties] {
            let Some(vars) = source["Environment"]["Variables"].as_mapping() else {
                continue;
            };
            for (name, value) in vars {
                let name = name.as_str().ok_or("a variable name is not a string")?;
                match self
                    .eval(value, deploy)
                    .map_err(|e| format!("{name}: {e}"))?
                {
                    Resolved::NoValue => env.remove(name),
                    other => env.insert(name.to_string(), other.text()),
                };
            }
        }
        let json_logs = properties["LoggingConfig"]["LogFormat"].as_str() == Some("JSON");
        Ok(FunctionConfig {
            timeout_secs: number("Timeout", 3)?,
            memory_mb: number("MemorySize", 128)?,
            json_logs,
            env,
        })
    }

    fn eval(&self, value: &Value, deploy: &Deploy<'_>) -> Result<Resolved, String> {
        if let Some((tag, inner)) = tagged(value) {
            return match tag.as_str() {
                "Ref" => self.reference(inner.as_str().ok_or("!Ref of a non-string")?, deploy),
                "If" => {
                    let args = items(inner, "!If")?;
                    let [condition, then, otherwise] = args.as_slice() else {
                        return Err("!If takes three arguments".into());
                    };
                    let name = condition.as_str().ok_or("!If condition name")?;
                    if self.named_condition(name, deploy)? {
                        self.eval(then, deploy)
                    } else {
                        self.eval(otherwise, deploy)
                    }
                }
                "Sub" => self.sub(inner, deploy).map(Resolved::Text),
                "Join" => {
                    let args = items(inner, "!Join")?;
                    let [separator, list] = args.as_slice() else {
                        return Err("!Join takes two arguments".into());
                    };
                    let separator = separator.as_str().ok_or("!Join separator")?;
                    let parts = self.list(list, deploy)?;
                    Ok(Resolved::Text(parts.join(separator)))
                }
                "Split" => {
                    let args = items(inner, "!Split")?;
                    let [separator, text] = args.as_slice() else {
                        return Err("!Split takes two arguments".into());
                    };
                    let separator = separator.as_str().ok_or("!Split separator")?;
                    let text = self.eval(text, deploy)?.text();
                    Ok(Resolved::List(
                        text.split(separator).map(String::from).collect(),
                    ))
                }
                other => Err(format!("!{other} is not resolved by the bench: {value:?}")),
            };
        }
        match value {
            Value::String(s) => Ok(Resolved::Text(s.clone())),
            Value::Number(n) => Ok(Resolved::Text(n.to_string())),
            Value::Bool(b) => Ok(Resolved::Text(b.to_string())),
            Value::Sequence(_) => Ok(Resolved::List(self.list(value, deploy)?)),
            other => Err(format!("unexpected value {other:?}")),
        }
    }

    /// A list argument: a YAML list (each element resolved, lists flattened) or an intrinsic
    /// giving a list.
    fn list(&self, value: &Value, deploy: &Deploy<'_>) -> Result<Vec<String>, String> {
        if let Value::Sequence(elements) = value {
            let mut out = Vec::new();
            for element in elements {
                match self.eval(element, deploy)? {
                    Resolved::Text(s) => out.push(s),
                    Resolved::List(l) => out.extend(l),
                    Resolved::NoValue => {}
                }
            }
            return Ok(out);
        }
        Ok(match self.eval(value, deploy)? {
            Resolved::List(l) => l,
            Resolved::Text(s) => vec![s],
            Resolved::NoValue => vec![],
        })
    }

    fn reference(&self, name: &str, deploy: &Deploy<'_>) -> Result<Resolved, String> {
        let text = |s: &str| Ok(Resolved::Text(s.to_string()));
        match name {
            "AWS::NoValue" => return Ok(Resolved::NoValue),
            "AWS::StackName" => return text(deploy.stack),
            "AWS::Region" => return text("us-east-1"),
            "AWS::AccountId" => return text("123456789012"),
            "AWS::Partition" => return text("aws"),
            "AWS::URLSuffix" => return text("amazonaws.com"),
            _ => {}
        }
        if let Some(parameter) = self.root["Parameters"].get(name) {
            let value = match deploy.parameters.get(name) {
                Some(v) => v.clone(),
                None => match &parameter["Default"] {
                    Value::Null => return Err(format!("parameter {name} has no default")),
                    v => self.eval(v, deploy)?.text(),
                },
            };
            return Ok(
                if parameter["Type"].as_str() == Some("CommaDelimitedList") {
                    Resolved::List(value.split(',').map(String::from).collect())
                } else {
                    Resolved::Text(value)
                },
            );
        }
        if self.root["Resources"].get(name).is_some() {
            return Ok(Resolved::Text((deploy.physical_name)(name)));
        }
        Err(format!("!Ref {name}: neither a parameter nor a resource"))
    }

    fn sub(&self, value: &Value, deploy: &Deploy<'_>) -> Result<String, String> {
        let template = value
            .as_str()
            .ok_or("!Sub with a variable map is not resolved by the bench")?;
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| format!("!Sub {template:?}: unclosed ${{"))?;
            let name = &rest[start + 2..start + end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if name.contains('.') {
                return Err(format!(
                    "!Sub {template:?}: attribute {name} is not resolved"
                ));
            } else {
                out.push_str(&self.reference(name, deploy)?.text());
            }
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn named_condition(&self, name: &str, deploy: &Deploy<'_>) -> Result<bool, String> {
        let condition = self.root["Conditions"]
            .get(name)
            .ok_or_else(|| format!("no condition {name}"))?;
        self.condition(condition, deploy)
    }

    fn condition(&self, value: &Value, deploy: &Deploy<'_>) -> Result<bool, String> {
        let (tag, inner) = tagged(value).ok_or_else(|| format!("not a condition: {value:?}"))?;
        match tag.as_str() {
            "Not" => {
                let args = items(inner, "!Not")?;
                let [only] = args.as_slice() else {
                    return Err("!Not takes one argument".into());
                };
                Ok(!self.condition(only, deploy)?)
            }
            "Equals" => {
                let args = items(inner, "!Equals")?;
                let [a, b] = args.as_slice() else {
                    return Err("!Equals takes two arguments".into());
                };
                Ok(self.eval(a, deploy)?.text() == self.eval(b, deploy)?.text())
            }
            "And" | "Or" => {
                let mut results = Vec::new();
                for arg in items(inner, &tag)? {
                    results.push(self.condition(&arg, deploy)?);
                }
                Ok(if tag == "And" {
                    results.iter().all(|r| *r)
                } else {
                    results.iter().any(|r| *r)
                })
            }
            "Condition" => self.named_condition(inner.as_str().ok_or("Condition name")?, deploy),
            other => Err(format!("!{other} is not a condition")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Template {
        Template::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
            .unwrap()
    }

    fn deploy_config(logical: &str) -> FunctionConfig {
        let parameters: BTreeMap<&str, String> = [
            (
                "CheckoutSuccessUrl",
                "https://shop.example/thanks?s={CHECKOUT_SESSION_ID}",
            ),
            ("MailFrom", "orders@shop.example"),
            ("MailIdentity", "shop.example"),
            ("MerchantName", "Demo Shop"),
            ("MerchantPostalAddress", "1 rue de la Paix, Paris"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        let physical = |name: &str| format!("t-{name}");
        template()
            .function(
                logical,
                &Deploy {
                    stack: "bench",
                    parameters: &parameters,
                    physical_name: &physical,
                },
            )
            .unwrap()
    }

    #[test]
    fn the_webhook_gets_its_table_its_secret_parameter_and_the_globals() {
        let config = deploy_config("WebhookFunction");
        assert_eq!(config.timeout_secs, 10);
        assert_eq!(config.memory_mb, 128);
        assert!(config.json_logs);
        assert_eq!(config.env["EVENTS_TABLE"], "t-EventsTable");
        assert_eq!(
            config.env["STRIPE_WEBHOOK_SECRET_PARAMETER"],
            "/stripe-checkout/webhook-secret"
        );
        assert_eq!(config.env["RUST_LOG"], "info");
        assert_eq!(config.env["STRIPE_MODE"], "test");
    }

    #[test]
    fn conditions_subs_and_novalue_resolve_as_cloudformation_does() {
        let config = deploy_config("ReconcileFunction");
        assert_eq!(
            config.env["PUBLIC_BASE_URL_PARAMETER"],
            "/bench/public-base-url"
        );
        // StockTracking defaults to Disabled, ShopPolicyParameter to empty: no variable.
        assert!(!config.env.contains_key("STOCK_TABLE"));
        assert!(!config.env.contains_key("SHOP_POLICY_PARAMETER"));
        let create = deploy_config("CreateSessionFunction");
        assert_eq!(create.env["ALLOWED_ORIGINS"], "");
        assert_eq!(create.timeout_secs, 29);
    }
}
