//! Legacy eval rows (Mastra's deprecated `evals` metrics), kept per agent and listed by the
//! `evals/ci` (rows of type `test`) and `evals/live` (type `live`) routes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::storage::collection::{self, EVALS, Order, Record};
use crate::storage::{Result, Store};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvalRecord {
    pub id: String,
    /// The agent key the row belongs to.
    pub agent_id: String,
    /// `test` (CI) or `live`.
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at_ms: u64,
    /// The row as listed (§4.1.3 `EvalRow`).
    pub row: Value,
}

impl Record for EvalRecord {
    const COLLECTION: &'static collection::Collection = &EVALS;
    fn id(&self) -> &str {
        &self.id
    }
    fn index_keys(&self) -> Vec<(String, u64)> {
        vec![(self.agent_id.clone(), self.created_at_ms)]
    }
}

/// The rows of `agent_id` of `kind`, oldest first.
pub fn list(store: &Store, agent_id: &str, kind: &str) -> Result<Vec<Value>> {
    store.read_blocking(|tx| {
        Ok(
            collection::list_by::<EvalRecord>(tx, 0, agent_id, Order::Oldest)?
                .into_iter()
                .filter(|r| r.kind == kind)
                .map(|r| r.row)
                .collect(),
        )
    })
}

/// Stores a row.
pub fn save(store: &Store, record: &EvalRecord) -> Result<()> {
    store.write_blocking(|tx| collection::put(tx, record).map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_are_listed_by_agent_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (i, (agent, kind)) in [("a", "test"), ("a", "live"), ("b", "test"), ("a", "test")]
            .iter()
            .enumerate()
        {
            save(
                &store,
                &EvalRecord {
                    id: format!("e{i}"),
                    agent_id: agent.to_string(),
                    kind: kind.to_string(),
                    created_at_ms: i as u64,
                    row: json!({"n": i}),
                },
            )
            .unwrap();
        }
        assert_eq!(
            list(&store, "a", "test").unwrap(),
            vec![json!({"n": 0}), json!({"n": 3})]
        );
        assert_eq!(list(&store, "a", "live").unwrap(), vec![json!({"n": 1})]);
        assert!(list(&store, "c", "test").unwrap().is_empty());
    }
}
