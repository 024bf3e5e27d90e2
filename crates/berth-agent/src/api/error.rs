//! Every API error is a JSON body with a status code: `{"Code", "Message"}`, plus the
//! validation `Errors` (each with its JSON `Path`) and `Warnings` for a refused task: at
//! most the first 100 of each, with `ErrorsOmitted` and `WarningsOmitted` counting the
//! others when there are more.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_model::input::Issue;
use serde::Serialize;

/// A problem at a place in a submitted task definition.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IssueView {
    /// JSON path, empty for the whole input.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl From<&Issue> for IssueView {
    fn from(issue: &Issue) -> Self {
        IssueView { path: issue.path.clone(), message: issue.message.clone() }
    }
}

/// An error answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    /// A stable word for programs (`InvalidTask`, `NotFound`, ...).
    pub code: &'static str,
    /// What was wrong, for people.
    pub message: String,
    /// Validation errors, each naming its path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<IssueView>,
    /// How many errors there were beyond those in `errors`.
    #[serde(skip_serializing_if = "is_zero")]
    pub errors_omitted: usize,
    /// Warnings that came with them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<IssueView>,
    /// How many warnings there were beyond those in `warnings`.
    #[serde(skip_serializing_if = "is_zero")]
    pub warnings_omitted: usize,
}

/// For `skip_serializing_if`: the counts of omitted issues are left out when nothing was.
pub(super) fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
            errors_omitted: 0,
            warnings: Vec::new(),
            warnings_omitted: 0,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// 500, for what went wrong inside berth or Docker.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal", message)
    }

    /// 503: the engine is not running (starting or shutting down).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", message)
    }

    /// 400 for a task definition with these errors and warnings.
    pub fn invalid_task(message: impl Into<String>, errors: &[Issue], warnings: &[Issue]) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "InvalidTask",
            message: message.into(),
            errors: errors.iter().map(IssueView::from).collect(),
            errors_omitted: 0,
            warnings: warnings.iter().map(IssueView::from).collect(),
            warnings_omitted: 0,
        }
    }

    /// The same error, saying how many errors and warnings were left out of its lists.
    pub fn with_omitted(mut self, errors_omitted: usize, warnings_omitted: usize) -> ApiError {
        self.errors_omitted = errors_omitted;
        self.warnings_omitted = warnings_omitted;
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<berth_engine::EngineError> for ApiError {
    fn from(e: berth_engine::EngineError) -> Self {
        use berth_engine::EngineError as E;
        match e {
            E::NotRunning => ApiError::unavailable("the engine is not running"),
            E::Stopped(e) => ApiError::unavailable(format!("the engine has stopped: {e}")),
            E::TaskNotFound(arn) => ApiError::not_found(format!("no task {arn}")),
            E::ContainerNotFound(c) => ApiError::not_found(c.to_string()),
            // A valid task this host can never hold: refused, nothing changed.
            E::NeverFits(e) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "NeverFits", e.to_string()),
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, axum::Json(self)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
