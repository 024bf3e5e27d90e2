//! `GET /v1/events`: state changes as NDJSON, one JSON object per line, from the durable
//! change log. `?since=SEQ` starts after the change numbered SEQ (`since=0`: everything
//! retained); without it, only changes to come. A reader that asks for changes older than
//! the retention first gets `{"Gap":{"From":a,"To":b}}` (positions a..b are gone). The
//! stream follows new changes until the client goes away or berth stops; `follow=false`
//! ends it once caught up. When the engine stops because of a failure (a store commit
//! failed), a following stream sends what was committed, then one last line
//! `{"Error":"<why>"}`, and ends; a shutdown ends it without that line.

use super::access::Followers;
use super::{ApiError, ApiState};
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use berth_engine::LogItem;
use futures_util::StreamExt;
use serde::Deserialize;
use std::sync::Arc;

/// The query `GET /v1/events` takes.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    since: Option<u64>,
    #[serde(default = "yes")]
    follow: bool,
}

fn yes() -> bool {
    true
}

/// One NDJSON line.
fn line(item: &LogItem) -> Result<Bytes, std::io::Error> {
    let mut text = match item {
        LogItem::Change(change) => serde_json::to_vec(change).map_err(std::io::Error::other)?,
        LogItem::Gap { from, to } => {
            serde_json::to_vec(&serde_json::json!({"Gap": {"From": from, "To": to}})).map_err(std::io::Error::other)?
        }
    };
    text.push(b'\n');
    Ok(Bytes::from(text))
}

/// The last line of a stream the engine's failure ended.
fn error_line(why: &str) -> Result<Bytes, std::io::Error> {
    let mut text = serde_json::to_vec(&serde_json::json!({"Error": why})).map_err(std::io::Error::other)?;
    text.push(b'\n');
    Ok(Bytes::from(text))
}

/// `GET /v1/events`.
pub async fn events(
    State(state): State<Arc<ApiState>>,
    Extension(followers): Extension<Followers>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    // A following reader holds one of the listener's places for as long as it reads.
    let place = if query.follow { Some(followers.take()?) } else { None };
    let reader = match query.since {
        Some(since) => state.engine.task_events_from(since.saturating_add(1)),
        None => state.engine.task_events(),
    };
    let follow = query.follow;
    let items = futures_util::stream::unfold(Some(reader), move |reader| async move {
        let mut reader = reader?;
        let item = if follow { reader.next().await } else { reader.try_next() };
        match item {
            Some(item) => Some((line(&item), Some(reader))),
            // The log ended: the engine stopped. Say why when a failure stopped it.
            None => match reader.end() {
                Some(berth_engine::EngineExit::Failed(e)) if follow => Some((error_line(&e.to_string()), None)),
                _ => None,
            },
        }
    });
    let mut shutdown = state.shutdown.clone();
    let engine = state.engine.clone();
    let items = items
        .take_until(async move {
            let _ = shutdown.wait_for(|down| *down).await;
            // A shutdown because the engine failed (berth daemon exits after it): its log
            // has ended, so the reader finishes what was committed and the error line by
            // itself; cutting the stream here could lose that last line.
            if matches!(engine.exit(), Some(berth_engine::EngineExit::Failed(_))) {
                std::future::pending::<()>().await;
            }
        })
        .map(move |item| {
            let _held = &place;
            item
        });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(items)).into_response())
}
