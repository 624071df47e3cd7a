//! `workflows` group: the workflow objects. (Runs come with the workflow engine.)

use salvo::prelude::*;
use serde_json::{Map, Value};

use super::ApiError;
use super::state::AppState;

/// All workflows, by key.
#[endpoint(tags("workflows"), operation_id = "getWorkflows")]
pub async fn list(depot: &mut Depot) -> Json<Map<String, Value>> {
    let state = AppState::get(depot);
    Json(
        state
            .workflows
            .iter()
            .map(|w| (w.key.clone(), w.to_wire()))
            .collect(),
    )
}

/// One workflow.
#[endpoint(tags("workflows"), operation_id = "getWorkflowById", parameters(("workflowId" = String, Path, description = "The workflow id")))]
pub async fn get(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let id = req.param::<String>("workflowId").unwrap_or_default();
    Ok(Json(state.workflows.get(&id)?.to_wire()))
}
