//! What the client commands (`submit`, `ps`, `inspect`, `stop`, `events`, `logs`,
//! `images`) share: where the daemon is, HTTP to it over its unix socket or TCP, the
//! bearer token for TCP, API errors turned into messages, and output helpers.
//!
//! The daemon is `-H/--host`, else `BERTH_HOST`: `unix:///path/to/berth.sock`, a bare
//! socket path, or `tcp://HOST:PORT` / `http://HOST:PORT`; else the socket
//! `berth.sock` in the data directory `berth daemon` would use with the same
//! environment (`BERTH_DATA_DIR`, `BERTH_CONFIG`, `XDG_STATE_HOME`, `HOME`). Over TCP,
//! every call (reads too: they show task contents) sends the token of `BERTH_TOKEN`,
//! else of the file `BERTH_TOKEN_FILE` names.

use anyhow::Context;
use berth_agent::AgentConfig;
use berth_agent::config::{DEFAULT_TCP_PORT, Overrides};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The variable that names the daemon.
pub const HOST_ENV: &str = "BERTH_HOST";
/// The variable holding the bearer token for TCP calls.
pub const TOKEN_ENV: &str = "BERTH_TOKEN";
/// The variable naming a file that holds the bearer token.
pub const TOKEN_FILE_ENV: &str = "BERTH_TOKEN_FILE";
/// The variable naming the daemon's configuration file (as `berth daemon --config`).
const CONFIG_ENV: &str = "BERTH_CONFIG";

/// How long connecting may take (the daemon is local or near).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The option every client command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct HostArgs {
    /// The daemon: unix:///path/to/berth.sock, a socket path, or tcp://HOST:PORT
    /// [default: the socket in the daemon's default data directory].
    #[arg(short = 'H', long = "host", value_name = "ADDRESS", env = HOST_ENV)]
    host: Option<String>,
}

impl HostArgs {
    /// A client of the daemon this names.
    pub fn connect(&self) -> anyhow::Result<Client> {
        let endpoint = match self.host.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
            Some(host) => Endpoint::parse(host)?,
            None => Endpoint::Unix(default_socket()?),
        };
        Client::new(endpoint)
    }
}

/// The socket of the daemon's default data directory, worked out as `berth daemon` does
/// with the same environment.
fn default_socket() -> anyhow::Result<PathBuf> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let file = env.get(CONFIG_ENV).filter(|f| !f.is_empty()).map(PathBuf::from);
    let config = AgentConfig::load(file.as_deref(), &env, &Overrides::default()).with_context(|| {
        format!("cannot work out the daemon's data directory (set {HOST_ENV} or -H to name the daemon)")
    })?;
    Ok(config.socket_path())
}

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket.
    Unix(PathBuf),
    /// TCP, `host:port`.
    Tcp(String),
}

impl Endpoint {
    /// `unix:///path`, a bare path, `tcp://host[:port]` or `http://host[:port]` (the port
    /// defaults to the daemon's, 51678).
    pub fn parse(s: &str) -> anyhow::Result<Endpoint> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                anyhow::bail!("{HOST_ENV} {s:?} names no socket path");
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let rest = s.strip_prefix("tcp://").or_else(|| s.strip_prefix("http://"));
        let Some(rest) = rest else {
            if s.contains("://") {
                anyhow::bail!("{HOST_ENV} {s:?}: expected unix:///PATH, a socket path, or tcp://HOST:PORT");
            }
            return Ok(Endpoint::Unix(PathBuf::from(s)));
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            anyhow::bail!("{HOST_ENV} {s:?}: expected tcp://HOST:PORT");
        }
        let has_port = match authority.rfind(']') {
            Some(close) => authority[close..].contains(':'),
            None => authority.contains(':'),
        };
        let authority = if has_port { authority.to_owned() } else { format!("{authority}:{DEFAULT_TCP_PORT}") };
        Url::parse(&format!("http://{authority}/")).with_context(|| format!("{HOST_ENV} {s:?} is not an address"))?;
        Ok(Endpoint::Tcp(authority))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix socket {}", path.display()),
            Endpoint::Tcp(authority) => write!(f, "tcp://{authority}"),
        }
    }
}

/// Why a call did not give an answer the command can use.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon answers there.
    Unreachable {
        /// Where it was looked for.
        endpoint: Endpoint,
        /// Why the connection failed.
        reason: String,
    },
    /// The daemon answered with an error.
    Api(ApiError),
    /// Anything else (the connection broke, the answer is not what the API gives).
    Other(anyhow::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unreachable { endpoint, reason } => write!(
                f,
                "no berth daemon answers on {endpoint} ({reason}): start one with `berth daemon`, or set {HOST_ENV} \
                 (or -H) to where one listens"
            ),
            ClientError::Api(e) => e.fmt(f),
            ClientError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// An error answer: `{"Code", "Message", "Errors", "ErrorsOmitted", "Warnings",
/// "WarningsOmitted"}` (the code, for programs, is not shown).
#[derive(Debug, Clone)]
pub struct ApiError {
    /// What was wrong.
    pub message: String,
    /// Validation errors, `path: message`.
    pub errors: Vec<String>,
    /// How many errors the daemon left out of `errors`.
    pub errors_omitted: u64,
    /// Warnings that came with them, `path: message`.
    pub warnings: Vec<String>,
    /// How many warnings the daemon left out of `warnings`.
    pub warnings_omitted: u64,
    /// A hint of the client's own.
    pub hint: Option<String>,
}

impl ApiError {
    /// The error in an answer's status and body (which may not be the API's JSON when
    /// something else answers).
    fn from_answer(status: StatusCode, body: &[u8]) -> ApiError {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let message = text(&json["Message"]).unwrap_or_else(|| {
            let body = String::from_utf8_lossy(body);
            let body = body.trim();
            if body.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {body}") }
        });
        ApiError {
            message,
            errors: issues(&json["Errors"]),
            errors_omitted: json["ErrorsOmitted"].as_u64().unwrap_or(0),
            warnings: issues(&json["Warnings"]),
            warnings_omitted: json["WarningsOmitted"].as_u64().unwrap_or(0),
            hint: None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The message of a refused task lists the errors after a header; they are shown
        // one a line instead.
        let message = match self.message.split_once(": ") {
            Some((header, rest))
                if !self.errors.is_empty()
                    && self.errors.iter().all(|e| rest.contains(e.rsplit(": ").next().unwrap_or(e))) =>
            {
                header
            }
            _ => self.message.as_str(),
        };
        f.write_str(message)?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        if self.errors_omitted > 0 {
            write!(f, "\n  ... and {} more errors", self.errors_omitted)?;
        }
        for w in &self.warnings {
            write!(f, "\n  warning: {w}")?;
        }
        if self.warnings_omitted > 0 {
            write!(f, "\n  warning: ... and {} more warnings", self.warnings_omitted)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n{hint}")?;
        }
        Ok(())
    }
}

/// `[{"Path","Message"}]` as `path: message` lines (the message alone for an empty path).
pub fn issues(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    let path = i["Path"].as_str().unwrap_or_default();
                    let message = i["Message"].as_str().unwrap_or_default();
                    if path.is_empty() { message.to_owned() } else { format!("{path}: {message}") }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A client of one daemon, with the runtime its calls run on.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    endpoint: Endpoint,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    /// A client of the daemon at `endpoint` (nothing is sent yet).
    pub fn new(endpoint: Endpoint) -> anyhow::Result<Client> {
        let builder = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).no_proxy();
        let (builder, base) = match &endpoint {
            Endpoint::Unix(path) => (builder.unix_socket(path.as_path()), "http://localhost/".to_owned()),
            Endpoint::Tcp(authority) => (builder, format!("http://{authority}/")),
        };
        let http = builder.build().context("setting up the HTTP client")?;
        let base = Url::parse(&base).with_context(|| format!("{base} is not a URL"))?;
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
        Ok(Client { http, base, endpoint, runtime })
    }

    /// Runs `future` to its end.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The URL of the path made of `segments` (each percent-encoded as one segment) with
    /// `query`.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.clear().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// `GET`; an answer that is not a success is an error.
    pub async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<reqwest::Response, ClientError> {
        self.send(Method::GET, segments, query, None).await
    }

    /// `POST` with `body`; an answer that is not a success is an error.
    pub async fn post(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<reqwest::Response, ClientError> {
        self.send(Method::POST, segments, query, Some(body)).await
    }

    /// `GET` of a JSON answer.
    pub async fn get_json(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Value, ClientError> {
        json(self.get(segments, query).await?).await
    }

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self.http.request(method, self.url(segments, query));
        let mut token_given = false;
        if matches!(self.endpoint, Endpoint::Tcp(_))
            && let Some(token) = token().map_err(ClientError::Other)?
        {
            request = request.bearer_auth(token);
            token_given = true;
        }
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        let response = request.send().await.map_err(|e| self.failed(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.map_err(|e| self.failed(e))?;
        let mut error = ApiError::from_answer(status, &body);
        if status == StatusCode::UNAUTHORIZED && !token_given {
            error.hint = Some(format!(
                "set {TOKEN_ENV} to the daemon's token, or {TOKEN_FILE_ENV} to its file (`token` in the daemon's data \
                 directory)"
            ));
        }
        Err(ClientError::Api(error))
    }

    /// A failed request: unreachable when the connection could not be made.
    pub fn failed(&self, e: reqwest::Error) -> ClientError {
        if e.is_connect() || connection_refused(&e) {
            ClientError::Unreachable { endpoint: self.endpoint.clone(), reason: root_cause(&e) }
        } else {
            ClientError::Other(anyhow::Error::new(e).context(format!("talking to the daemon on {}", self.endpoint)))
        }
    }
}

/// The body of a successful answer as JSON.
pub async fn json(response: reqwest::Response) -> Result<Value, ClientError> {
    let body = response.bytes().await.map_err(|e| ClientError::Other(e.into()))?;
    serde_json::from_slice(&body)
        .map_err(|e| ClientError::Other(anyhow::anyhow!("the daemon's answer is not JSON: {e}")))
}

/// The token for TCP calls: `BERTH_TOKEN`, else the content of `BERTH_TOKEN_FILE`.
fn token() -> anyhow::Result<Option<String>> {
    if let Ok(token) = std::env::var(TOKEN_ENV)
        && !token.trim().is_empty()
    {
        return Ok(Some(token.trim().to_owned()));
    }
    match std::env::var_os(TOKEN_FILE_ENV).filter(|f| !f.is_empty()) {
        Some(file) => {
            let path = Path::new(&file);
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {} ({TOKEN_FILE_ENV})", path.display()))?;
            Ok(Some(token.trim().to_owned()).filter(|t| !t.is_empty()))
        }
        None => Ok(None),
    }
}

/// Whether the error's causes include an I/O error that means nothing listens there.
fn connection_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind as K;
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(io.kind(), K::NotFound | K::ConnectionRefused | K::PermissionDenied | K::AddrNotAvailable)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The innermost cause's message.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// What happened to a write to standard output.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// It went out.
    Ok,
    /// The reader went away (`| head`): the command should end quietly.
    Closed,
}

/// Writes `bytes` to `out` and flushes; a closed pipe is not an error.
pub fn write_out(out: &mut impl Write, bytes: &[u8]) -> anyhow::Result<Written> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(Written::Ok),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Written::Closed),
        Err(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
    }
}

/// Rows under headers, columns left-aligned and three spaces apart.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            text.push_str(cell);
            if i < last {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count()) + 3;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push('\n');
        text
    };
    let mut text = line(headers.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

/// The last `/`-separated part of an arn (which the API also accepts).
pub fn short_arn(arn: &str) -> &str {
    berth_model::task::arn_last_part(arn)
}

/// JSON text indented two spaces a level, keys in the order given (the text must be
/// valid JSON).
pub fn pretty(json: &[u8]) -> String {
    let text = String::from_utf8_lossy(json);
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if chars.peek().is_some_and(|&n| n == '}' || n == ']') {
                    out.extend(chars.next());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let unix = |p: &str| Endpoint::Unix(PathBuf::from(p));
        assert_eq!(Endpoint::parse("unix:///run/b.sock").ok(), Some(unix("/run/b.sock")));
        assert_eq!(Endpoint::parse("/run/b.sock").ok(), Some(unix("/run/b.sock")));
        assert_eq!(Endpoint::parse("tcp://127.0.0.1:9").ok(), Some(Endpoint::Tcp("127.0.0.1:9".into())));
        assert_eq!(Endpoint::parse("http://localhost/").ok(), Some(Endpoint::Tcp("localhost:51678".into())));
        assert_eq!(Endpoint::parse("tcp://[::1]").ok(), Some(Endpoint::Tcp("[::1]:51678".into())));
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("unix://").is_err());
        assert!(Endpoint::parse("tcp://h:1/path").is_err());
    }

    #[test]
    fn a_refused_task_lists_its_errors_once() {
        let body = br#"{"Code":"InvalidTask","Message":"invalid task definition: a.b: bad; c: worse",
            "Errors":[{"Path":"a.b","Message":"bad"},{"Path":"c","Message":"worse"}],
            "Warnings":[{"Path":"","Message":"odd"}]}"#;
        let e = ApiError::from_answer(StatusCode::BAD_REQUEST, body);
        assert_eq!(e.to_string(), "invalid task definition\n  a.b: bad\n  c: worse\n  warning: odd");
        let capped = br#"{"Code":"InvalidTask","Message":"invalid task definition: a.b: bad",
            "Errors":[{"Path":"a.b","Message":"bad"}],"ErrorsOmitted":7,
            "Warnings":[{"Path":"","Message":"odd"}],"WarningsOmitted":2}"#;
        let e = ApiError::from_answer(StatusCode::BAD_REQUEST, capped);
        assert_eq!(
            e.to_string(),
            "invalid task definition\n  a.b: bad\n  ... and 7 more errors\n  warning: odd\n  warning: ... and 2 more warnings"
        );
        let e = ApiError::from_answer(StatusCode::BAD_GATEWAY, b"nope");
        assert_eq!(e.to_string(), "HTTP 502 Bad Gateway: nope");
    }

    #[test]
    fn pretty_keeps_the_order() {
        let text = pretty(br#"{"B":1,"A":[],"C":{"s":"x,{\"y\":"},"D":[1, 2]}"#);
        assert_eq!(
            text,
            "{\n  \"B\": 1,\n  \"A\": [],\n  \"C\": {\n    \"s\": \"x,{\\\"y\\\":\"\n  },\n  \"D\": [\n    1,\n    2\n  ]\n}"
        );
    }

    #[test]
    fn tables_align() {
        let t = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A     LONGER\nxyz   1\n");
    }
}
