//! Which registry an image comes from, and which credential keys name it, as Docker
//! decides both.

/// Docker Hub's registry name, as Docker normalizes references.
pub const DOCKER_HUB: &str = "docker.io";

/// The key Docker stores Docker Hub credentials under (`docker login` writes it, and it
/// is the server URL credential helpers are asked about).
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// Host names that all mean Docker Hub: a credential key naming any of them (with or
/// without scheme and path) is a Docker Hub key.
pub const DOCKER_HUB_ALIASES: &[&str] =
    &["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"];

/// The registry of an image reference, as Docker resolves it: the part before the first
/// `/` when it contains `.` or `:`, is `localhost`, or has upper-case letters (Docker's
/// rule); otherwise, and for a name without `/`, Docker Hub ([`DOCKER_HUB`]).
/// `index.docker.io` becomes `docker.io`; the host is lower-cased.
///
/// `busybox`, `library/busybox`, `user/repo` → `docker.io`; `localhost:5000/x` →
/// `localhost:5000`; `127.0.0.1:51671/busybox:latest` → `127.0.0.1:51671`;
/// `gcr.io/p/i` → `gcr.io`.
pub fn registry_of(image: &str) -> String {
    let image = image.trim();
    let Some((first, _)) = image.split_once('/') else {
        return DOCKER_HUB.to_owned();
    };
    let is_host = first.contains(['.', ':']) || first == "localhost" || first.chars().any(|c| c.is_ascii_uppercase());
    if !is_host {
        return DOCKER_HUB.to_owned();
    }
    let host = first.to_ascii_lowercase();
    if host == "index.docker.io" { DOCKER_HUB.to_owned() } else { host }
}

/// The host part of a registry name or credential key: the scheme (`http://`,
/// `https://`) and any path (`/v1/`) dropped, lower-cased.
/// `https://index.docker.io/v1/` → `index.docker.io`; `http://localhost:5000/` →
/// `localhost:5000`.
pub fn registry_host(key: &str) -> String {
    let key = key.trim();
    let lower = key.to_ascii_lowercase();
    let rest = ["https://", "http://"].iter().find_map(|scheme| lower.strip_prefix(scheme)).unwrap_or(&lower);
    rest.split('/').next().unwrap_or_default().to_owned()
}

/// Whether a registry name or credential key means Docker Hub.
pub fn is_docker_hub(key: &str) -> bool {
    let host = registry_host(key);
    DOCKER_HUB_ALIASES.contains(&host.as_str())
}

/// The server address Docker uses for a registry: [`DOCKER_HUB_SERVER`] for Docker
/// Hub, the host (with port) otherwise. It goes to credential helpers and into
/// [`RegistryAuth::server_address`](super::RegistryAuth::server_address).
pub fn server_address(registry: &str) -> String {
    if is_docker_hub(registry) { DOCKER_HUB_SERVER.to_owned() } else { registry_host(registry) }
}

/// How well a credential key names a registry: `Some(0)` an exact match, `Some(1)` the
/// same host once scheme and path are dropped (case-insensitive), `Some(2)` two names
/// of Docker Hub; `None` no match. Lower is better.
pub(crate) fn match_rank(key: &str, registry: &str) -> Option<u8> {
    let hub = is_docker_hub(registry);
    if key == registry || (hub && key == DOCKER_HUB_SERVER) {
        return Some(0);
    }
    if registry_host(key) == registry_host(registry) {
        return Some(1);
    }
    if hub && is_docker_hub(key) {
        return Some(2);
    }
    None
}

/// Whether a credential key names a registry: exactly, or after dropping scheme and
/// path (host compared without case), or both naming Docker Hub.
pub fn key_matches(key: &str, registry: &str) -> bool {
    match_rank(key, registry).is_some()
}

/// The best key of `keys` for `registry`: the lowest [`match_rank`], the first such
/// key in the given order on a tie.
pub(crate) fn best_key<'k, I>(keys: I, registry: &str) -> Option<&'k str>
where
    I: IntoIterator<Item = &'k str>,
{
    let mut best: Option<(u8, &str)> = None;
    for key in keys {
        if let Some(rank) = match_rank(key, registry)
            && best.is_none_or(|(r, _)| rank < r)
        {
            best = Some((rank, key));
        }
    }
    best.map(|(_, key)| key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_images() {
        for image in [
            "busybox",
            "busybox:latest",
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "library/busybox",
            "user/repo",
            "user/repo:tag",
            "docker.io/library/busybox",
            "index.docker.io/library/busybox",
            "",
        ] {
            assert_eq!(registry_of(image), DOCKER_HUB, "{image}");
        }
    }

    #[test]
    fn other_registries() {
        assert_eq!(registry_of("localhost:5000/x"), "localhost:5000");
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(registry_of("127.0.0.1:51671/busybox:latest"), "127.0.0.1:51671");
        assert_eq!(registry_of("gcr.io/p/i"), "gcr.io");
        assert_eq!(registry_of("registry.example.com:443/team/app:1.0"), "registry.example.com:443");
        assert_eq!(registry_of("Registry.Example.COM/app"), "registry.example.com");
        assert_eq!(registry_of("myhost:5000/app"), "myhost:5000");
        assert_eq!(registry_of("[::1]:5000/app"), "[::1]:5000");
        // Docker reads an upper-case first part as a host, never as a Hub user.
        assert_eq!(registry_of("MyHost/app"), "myhost");
        // A Hub alias other than index.docker.io stays as written.
        assert_eq!(registry_of("registry-1.docker.io/library/busybox"), "registry-1.docker.io");
    }

    #[test]
    fn hosts_of_keys() {
        assert_eq!(registry_host("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(registry_host("http://localhost:5000/"), "localhost:5000");
        assert_eq!(registry_host("HTTPS://GCR.io"), "gcr.io");
        assert_eq!(registry_host("gcr.io/some/path"), "gcr.io");
        assert_eq!(registry_host("gcr.io"), "gcr.io");
    }

    #[test]
    fn hub_aliases_match_each_other() {
        let keys = [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "https://docker.io",
            "registry-1.docker.io",
            "https://registry-1.docker.io/v2/",
            "registry.hub.docker.com",
        ];
        for key in keys {
            for registry in keys {
                assert!(key_matches(key, registry), "{key} vs {registry}");
            }
            assert!(key_matches(key, &registry_of("busybox")), "{key}");
            assert!(!key_matches(key, "gcr.io"), "{key}");
            assert!(!key_matches("gcr.io", key), "{key}");
        }
    }

    #[test]
    fn keys_match_exactly_or_without_scheme_and_path() {
        assert_eq!(match_rank("gcr.io", "gcr.io"), Some(0));
        assert_eq!(match_rank("https://gcr.io", "gcr.io"), Some(1));
        assert_eq!(match_rank("http://gcr.io", "gcr.io"), Some(1));
        assert_eq!(match_rank("gcr.io/v1/", "gcr.io"), Some(1));
        assert_eq!(match_rank("https://GCR.IO/v2/", "gcr.io"), Some(1));
        assert_eq!(match_rank("localhost:5000", "localhost:5000"), Some(0));
        assert_eq!(match_rank("http://localhost:5000/", "localhost:5000"), Some(1));
        assert_eq!(match_rank("https://index.docker.io/v1/", "docker.io"), Some(0));
        assert_eq!(match_rank("docker.io", "docker.io"), Some(0));
        assert_eq!(match_rank("index.docker.io", "docker.io"), Some(2));
        // A port is part of the host; a subdomain is another host.
        assert!(!key_matches("localhost", "localhost:5000"));
        assert!(!key_matches("localhost:5000", "localhost"));
        assert!(!key_matches("localhost:5001", "localhost:5000"));
        assert!(!key_matches("eu.gcr.io", "gcr.io"));
        assert!(!key_matches("gcr.io.evil.example", "gcr.io"));
    }

    #[test]
    fn best_key_prefers_the_closest_match() {
        let keys = ["docker.io", "https://gcr.io", "gcr.io", "https://index.docker.io/v1/"];
        assert_eq!(best_key(keys, "gcr.io"), Some("gcr.io"));
        assert_eq!(best_key(keys, DOCKER_HUB), Some("docker.io"));
        assert_eq!(best_key(["index.docker.io", "https://index.docker.io/v1/"], DOCKER_HUB), Some(DOCKER_HUB_SERVER));
        assert_eq!(best_key(["registry-1.docker.io", "quay.io"], DOCKER_HUB), Some("registry-1.docker.io"));
        assert_eq!(best_key(["quay.io"], DOCKER_HUB), None);
    }

    #[test]
    fn server_addresses() {
        assert_eq!(server_address(DOCKER_HUB), DOCKER_HUB_SERVER);
        assert_eq!(server_address("registry-1.docker.io"), DOCKER_HUB_SERVER);
        assert_eq!(server_address("localhost:5000"), "localhost:5000");
        assert_eq!(server_address("https://gcr.io/v2/"), "gcr.io");
    }
}
