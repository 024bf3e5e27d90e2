//! The daemon's log: human lines or JSON objects, on standard error, filtered by the
//! configured level. Whatever the filter says, the HTTP and Docker client libraries are
//! capped at `info`: at `debug` bollard logs request bodies, and a container's create
//! request carries its environment, secrets included.

use crate::config::{AgentConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Targets whose `debug` and `trace` output may quote request bodies or headers.
const CAPPED: &[&str] = &["bollard", "hyper", "hyper_util", "h2", "reqwest", "tower", "axum"];

/// The filter for `level` (a level or tracing filter directives), with the HTTP and
/// Docker client libraries capped at `info`.
pub fn filter(level: &str) -> Result<EnvFilter, String> {
    let mut directives = level.trim().to_string();
    for target in CAPPED {
        directives.push_str(&format!(",{target}=info"));
    }
    EnvFilter::try_new(directives.trim_start_matches(','))
        .map_err(|e| format!("log_level {level:?} is not a level or filter: {e}"))
}

/// Install the global subscriber the configuration asks for.
pub fn init(config: &AgentConfig) -> Result<(), String> {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(&config.log_level)?)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match config.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_libraries_stay_at_info_even_when_asked_for_more() {
        let f = super::filter("trace").unwrap().to_string();
        assert!(f.contains("bollard=info"), "{f}");
        let f = super::filter("bollard=trace").unwrap().to_string();
        assert!(f.contains("bollard=info"), "{f}");
        assert!(super::filter("not a [filter").is_err());
    }
}
