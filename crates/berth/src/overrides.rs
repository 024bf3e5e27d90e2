//! `--env`, `--command` and `--container` (berth run, berth submit): ECS RunTask's overrides
//! of one container, made from the command line (`docs/overrides.md`).

use berth_model::input::overrides::{ContainerOverride, Overrides};
use berth_model::{Container, Task};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The override flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OverrideArgs {
    /// Set an environment variable of one container (repeatable), over the definition's:
    /// ECS RunTask's containerOverrides.environment. The container is --container's.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// Replace the command of one container (--container's) with every argument that
    /// follows: put it last.
    #[arg(long, value_name = "ARG", num_args = 1.., allow_hyphen_values = true)]
    command: Vec<String>,
    /// The container --env and --command change (default: the task's only container, else
    /// its only essential one).
    #[arg(long, value_name = "NAME")]
    container: Option<String>,
}

impl OverrideArgs {
    /// The override of one container of `task` (the definition as read), or `None` when no
    /// flag was given: the container `--container` names, else the task's only container,
    /// else its only essential one.
    pub fn of(&self, task: &Task) -> Result<Option<Overrides>, String> {
        if self.env.is_empty() && self.command.is_empty() && self.container.is_none() {
            return Ok(None);
        }
        let users: Vec<&Container> = task.containers.iter().filter(|c| !c.spec.internal).collect();
        let name = match &self.container {
            Some(name) if users.iter().any(|c| c.spec.name == *name) => name.clone(),
            Some(name) => return Err(format!("--container {name}: the task has no container of that name")),
            None => {
                let essential: Vec<&Container> = users.iter().copied().filter(|c| c.spec.essential).collect();
                match (&users[..], &essential[..]) {
                    ([only], _) | (_, [only]) => only.spec.name.clone(),
                    _ => {
                        return Err(format!(
                            "--env and --command change one container, and the task has {} ({} essential): name it \
                             with --container",
                            users.len(),
                            essential.len()
                        ));
                    }
                }
            }
        };
        let mut environment = BTreeMap::new();
        for item in &self.env {
            match item.split_once('=') {
                Some((k, v)) if !k.is_empty() => environment.insert(k.to_string(), v.to_string()),
                _ => return Err(format!("--env {item}: expected NAME=VALUE")),
            };
        }
        let command = (!self.command.is_empty()).then(|| self.command.clone());
        let path = format!("--container {name}");
        let container = ContainerOverride { path, name, command, environment, ..ContainerOverride::default() };
        Ok(Some(Overrides { path: "command line".into(), containers: vec![container], ..Overrides::default() }))
    }
}

/// `body` (a task definition object) with `overrides`' container overrides added to its
/// `overrides.containerOverrides` (made when absent; beside `taskDefinition` in describe
/// output), as the daemon reads them.
pub fn add_to_body(body: &[u8], overrides: &Overrides) -> Result<Vec<u8>, String> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(top) = &mut value else {
        return Err("--env and --command need a task definition object: a bare array has no place for overrides".into());
    };
    let entries = overrides.containers.iter().map(|c| {
        let mut entry = json!({"name": c.name});
        if let Some(command) = &c.command {
            entry["command"] = json!(command);
        }
        if !c.environment.is_empty() {
            let env: Vec<Value> = c.environment.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
            entry["environment"] = Value::Array(env);
        }
        entry
    });
    let given = top.entry("overrides").or_insert_with(|| json!({}));
    if given.is_null() {
        *given = json!({});
    }
    let Some(given) = given.as_object_mut() else { return Err("overrides: expected an object".into()) };
    let list = given.entry("containerOverrides").or_insert_with(|| json!([]));
    if list.is_null() {
        *list = json!([]);
    }
    let Some(list) = list.as_array_mut() else { return Err("overrides.containerOverrides: expected an array".into()) };
    list.extend(entries);
    serde_json::to_vec(&value).map_err(|e| format!("writing the task definition: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_override_is_added_where_the_daemon_reads_it() {
        let o = Overrides {
            containers: vec![ContainerOverride {
                name: "web".into(),
                command: Some(vec!["true".into()]),
                environment: BTreeMap::from([("A".into(), "1".into())]),
                ..ContainerOverride::default()
            }],
            ..Overrides::default()
        };
        let body =
            br#"{"family": "f", "containerDefinitions": [], "overrides": {"containerOverrides": [{"name": "db"}]}}"#;
        let out: Value = serde_json::from_slice(&add_to_body(body, &o).unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            out["overrides"]["containerOverrides"],
            json!([{"name": "db"}, {"name": "web", "command": ["true"], "environment": [{"name": "A", "value": "1"}]}])
        );
        assert!(add_to_body(b"[]", &o).is_err_and(|e| e.contains("bare array")));
    }
}
