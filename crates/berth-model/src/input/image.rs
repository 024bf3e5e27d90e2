//! Image references, checked against Docker's reference grammar
//! (`[registry[:port]/]repository[:tag][@digest]`, as `distribution/reference` defines it and
//! Docker enforces it) by a small hand-written checker.
//!
//! Hand-written rather than the grammar's regular expression: compiling that expression (as
//! `oci-spec` did) cost about 20 MB of memory in every berth process, and each parse was a
//! backtracking search. The checker makes a few linear passes and allocates nothing.
//!
//! The grammar, and the few rules around it that Docker applies:
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain "/"] path-component ["/" path-component]*
//! domain           := host [":" port-number]
//! host             := domain-component ["." domain-component]* | "[" [0-9a-fA-F:]+ "]"
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! port-number      := [0-9]+
//! path-component   := alpha-numeric [separator alpha-numeric]*
//! alpha-numeric    := [a-z0-9]+
//! separator        := [_.] | "__" | "-"+
//! tag              := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest           := algorithm ":" [0-9a-fA-F]{32,}
//! algorithm        := component [[+._-] component]*   component := [A-Za-z][A-Za-z0-9]*
//! ```
//!
//! - The first component of a name is a registry only when it has a `.` or a `:` or is
//!   `localhost` (Docker's rule); otherwise it belongs to the repository, which must be
//!   lowercase. A repository with upper-case letters is reported as such ("repository name must
//!   be lowercase", Docker's own words) rather than as a bad format.
//! - The repository, with the `library/` that Docker Hub adds to one-component names, is at
//!   most 255 characters; the registry does not count.
//! - A digest is sha256, sha384 or sha512 with 64, 96 or 128 hex digits.
//! - The reference must be ASCII (the grammar's `\w` in tags is ASCII in Docker's regular
//!   expressions).
//!
//! Templating left in an image (`<IMAGE1_NAME>`, `${REPO}:tag`, `{{.Image}}`) is not a
//! valid reference, so such a task definition is refused before anything is pulled.

const INVALID_FORMAT: &str = "invalid reference format";
const NAME_EMPTY: &str = "repository name must have at least one component";
const NAME_UPPERCASE: &str = "repository name must be lowercase";
const NAME_TOO_LONG: &str = "repository name must not be more than 255 characters";
const DIGEST_LENGTH: &str = "invalid checksum digest length";
const DIGEST_UNSUPPORTED: &str = "unsupported digest algorithm";

/// The longest repository Docker accepts.
const REPOSITORY_MAX_LEN: usize = 255;

/// Why `image` is not a reference Docker would accept, or `None` when it is one.
pub(crate) fn image_problem(image: &str) -> Option<String> {
    if !image.is_ascii() {
        return Some(INVALID_FORMAT.to_string());
    }
    let err = check(image).err()?;
    if repo_has_uppercase(image) && check(&image.to_ascii_lowercase()).is_ok() {
        Some(NAME_UPPERCASE.to_string())
    } else {
        Some(err.to_string())
    }
}

/// Checks `reference` against the grammar, then the repository's length and the digest's
/// algorithm, in that order (the order of Docker's checks, so the same message wins).
fn check(reference: &str) -> Result<(), &'static str> {
    if reference.is_empty() {
        return Err(NAME_EMPTY);
    }
    // Neither a name nor a tag has an `@`, so the first one starts the digest.
    let (name_and_tag, digest) = match reference.split_once('@') {
        Some((name_and_tag, digest)) => (name_and_tag, Some(digest)),
        None => (reference, None),
    };
    // A tag has neither `:` nor `/`, and the only other `:` of a name (a registry's port) is
    // followed by a `/`: the tag is what follows the last `:` when no `/` does.
    let (name, tag) = match name_and_tag.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (name_and_tag, None),
    };
    if !is_name(name) || !tag.is_none_or(is_tag) || !digest.is_none_or(is_digest) {
        return Err(INVALID_FORMAT);
    }
    if repository_len(name) > REPOSITORY_MAX_LEN {
        return Err(NAME_TOO_LONG);
    }
    if let Some((algorithm, hex)) = digest.and_then(|digest| digest.split_once(':')) {
        let hex_len = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return Err(DIGEST_UNSUPPORTED),
        };
        if hex.len() != hex_len {
            return Err(DIGEST_LENGTH);
        }
    }
    Ok(())
}

/// `name := [domain "/"] path`. A name that is a whole path is one even when its first
/// component looks like a registry (`foo_bar.com/app`), as in Docker's expression.
fn is_name(name: &str) -> bool {
    is_path(name)
        || name
            .split_once('/')
            .is_some_and(|(domain, path)| names_registry(domain) && is_domain(domain) && is_path(path))
}

/// `path := path-component ["/" path-component]*`.
fn is_path(path: &str) -> bool {
    path.split('/').all(is_path_component)
}

/// `path-component := [a-z0-9]+ [separator [a-z0-9]+]*`, `separator := [_.] | "__" | "-"+`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let run = i;
        while i < bytes.len() && alphanumeric(bytes[i]) {
            i += 1;
        }
        if i == run {
            return false; // empty, or a separator at the start, the end or after another
        }
        if i == bytes.len() {
            return true;
        }
        let separator = i;
        while i < bytes.len() && !alphanumeric(bytes[i]) {
            i += 1;
        }
        let separator = &bytes[separator..i];
        if !matches!(separator, b"." | b"_" | b"__") && !separator.iter().all(|&b| b == b'-') {
            return false;
        }
    }
}

/// `domain := host [":" port-number]`, the host a domain name or a bracketed IPv6 address.
fn is_domain(domain: &str) -> bool {
    let (host_ok, port) = match domain.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((address, port)) => {
                (!address.is_empty() && address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'), port)
            }
            None => return false,
        },
        None => {
            let (host, port) = domain.split_at(domain.find(':').unwrap_or(domain.len()));
            (host.split('.').all(is_domain_component), port)
        }
    };
    host_ok
        && (port.is_empty()
            || port
                .strip_prefix(':')
                .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())))
}

/// `domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(component: &str) -> bool {
    !component.is_empty()
        && !component.starts_with('-')
        && !component.ends_with('-')
        && component.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `tag := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match tag.as_bytes() {
        [first, rest @ ..] => {
            word(*first) && rest.len() <= 127 && rest.iter().all(|&b| word(b) || b == b'.' || b == b'-')
        }
        [] => false,
    }
}

/// `digest := algorithm ":" [0-9a-fA-F]{32,}`, whatever the algorithm (checked later).
fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let is_component = |component: &str| {
        component.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && component.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    algorithm.split(['+', '.', '_', '-']).all(is_component)
        && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether the first component of a name is a registry rather than part of the repository:
/// it has a `.` or a `:`, or is `localhost` (the rule Docker's reference parser uses).
fn names_registry(first: &str) -> bool {
    first.contains(['.', ':']) || first == "localhost"
}

/// The registry of `name`, if it names one, and the rest of it.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if names_registry(first) => (Some(first), rest),
        _ => (None, name),
    }
}

/// The length of the repository Docker makes of `name`: without the registry, and with the
/// `library/` that Docker Hub puts before a one-component repository.
fn repository_len(name: &str) -> usize {
    let (registry, repository) = split_registry(name);
    let docker_hub = registry.is_none_or(|registry| registry == "docker.io" || registry == "index.docker.io");
    if docker_hub && !repository.contains('/') { "library/".len() + repository.len() } else { repository.len() }
}

/// Whether the repository part (after any registry, before any tag or digest) has an
/// upper-case letter. Registries and tags may have them; repositories may not.
fn repo_has_uppercase(image: &str) -> bool {
    let name = image.split('@').next().unwrap_or(image);
    let (_, repo_and_tag) = split_registry(name);
    // A tag follows a `:` in the last path component.
    let (dirs, last) = repo_and_tag.rsplit_once('/').unwrap_or(("", repo_and_tag));
    let last = last.split(':').next().unwrap_or(last);
    dirs.chars().chain(last.chars()).any(|c| c.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_docker_accepts() {
        for ok in [
            "busybox",
            "busybox:latest",
            "127.0.0.1:51670/busybox:latest",
            "127.0.0.1:51670/amazon/firelens-fluentbit:latest",
            "docker.io/crccheck/hello-world",
            "localhost/app",
            "localhost:5000/app:v1.2",
            "amazon-ecs-ftest-windows-base:make",
            "012345678910.dkr.ecr.us-east-1.amazonaws.com/aws-for-fluent-bit-custom-envoy:latest",
            "840364872350.dkr.ecr.us-east-1.amazonaws.com/aws-appmesh-envoy:v1.12.2.1-prod",
            "public.ecr.aws/cloudwatch-agent/cloudwatch-agent:1.300066.1b1374",
            "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "nginx:1.25@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "Registry.Example.com/app:TAG",
            "my_app:Latest_1",
            crate::container::PAUSE_IMAGE,
        ] {
            assert_eq!(image_problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn templates_and_junk_are_refused() {
        for (bad, why) in [
            ("<IMAGE1_NAME>", "invalid reference format"),
            ("<repository_uri_service_a>", "invalid reference format"),
            ("${X}:tag", "invalid reference format"),
            ("${STACK_REPOSITORY_URL}:nginx-svc-${APP_VERSION}", "invalid reference format"),
            ("{{must_env `IMAGE`}}", "invalid reference format"),
            ("", "repository name must have at least one component"),
            (" busybox", "invalid reference format"),
            ("busybox ", "invalid reference format"),
            ("busybox:", "invalid reference format"),
            ("busybox:tä", "invalid reference format"),
            ("nginx@sha256:abc", "invalid reference format"),
            ("nginx@md5:0123456789abcdef0123456789abcdef", "unsupported digest algorithm"),
            ("a//b", "invalid reference format"),
            ("-busybox", "invalid reference format"),
        ] {
            assert_eq!(image_problem(bad).as_deref(), Some(why), "{bad:?}");
        }
    }

    #[test]
    fn uppercase_repositories_are_named_as_such() {
        for bad in ["Busybox", "BUSYBOX:latest", "example.com/My/App:v1", "localhost:5000/App"] {
            assert_eq!(image_problem(bad).as_deref(), Some("repository name must be lowercase"), "{bad}");
        }
    }

    #[test]
    fn overlong_repository_is_refused() {
        let long = format!("example.com/{}", "a".repeat(300));
        assert_eq!(image_problem(&long).as_deref(), Some("repository name must not be more than 255 characters"));
    }

    const HEX64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn grammar_cases_accepted() {
        let tag128 = format!("busybox:{}", "t".repeat(128));
        let sha384 = format!("a@sha384:{}", "f".repeat(96));
        let sha512 = format!("a@sha512:{}", "F".repeat(128));
        for ok in [
            "a",
            "a/b/c",
            "a__b",
            "a---b",
            "a.b_c",
            "a-b.c__d---e",
            "0/1",
            "[::1]:5000/app",
            "[::1]/app:tag",
            "[2001:db8::1]:443/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "localhost:5000/a/b:tag",
            "localhost:5000", // repository `localhost`, tag `5000`
            "test.com:tag",   // repository `test.com`, tag `tag`
            "x-1.Y-2.z:80/app",
            "a:_",
            "a:Tag.-_",
            "foo_bar.com/app", // a whole path, though its first component looks like a registry
            tag128.as_str(),
            sha384.as_str(),
            sha512.as_str(),
        ] {
            assert_eq!(image_problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn grammar_cases_refused() {
        let tag129 = format!("busybox:{}", "t".repeat(129));
        let hex63 = format!("a@sha256:{}", &HEX64[1..]);
        let not_hex = format!("a@sha256:{}g", &HEX64[1..]);
        for bad in [
            "a__-b",
            "a___b",
            "a..b",
            "a._b",
            "a-",
            "a_",
            "a.",
            ".a",
            "_a",
            "a/",
            "/a",
            "a:",
            "a:-tag",
            "a:.tag",
            "a:t/ag",
            "a:b:c",
            "host:port/",
            "host:5000/",
            "host:/a",
            "host:50a0/a",
            "-host.com/a",
            "host-.com/a",
            "host..com/a",
            "ho_st.com/a/",
            "[]/a",
            "[::1/a",
            "[::g]/a",
            "[::1]x/a",
            "[::1]",
            "a@",
            "a@sha256",
            "a@:0123456789abcdef0123456789abcdef",
            "a@1sha:0123456789abcdef0123456789abcdef",
            "a@sha256:0123456789abcdef0123456789abcde",
            "a@sha256:0123456789abcdef0123456789abcdef@x",
            "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            not_hex.as_str(),
            tag129.as_str(),
        ] {
            assert_eq!(image_problem(bad).as_deref(), Some("invalid reference format"), "{bad:?}");
        }
        // A well-formed sha256 digest of the wrong length: what oci-spec and Docker say.
        assert_eq!(image_problem(&hex63).as_deref(), Some("invalid checksum digest length"));
        let sha512_short = format!("a@sha512:{HEX64}");
        assert_eq!(image_problem(&sha512_short).as_deref(), Some("invalid checksum digest length"));
        for unsupported in ["a@sha1+b64:0123456789abcdef0123456789abcdef", "a@SHA256:0123456789abcdef0123456789abcdef"]
        {
            assert_eq!(image_problem(unsupported).as_deref(), Some("unsupported digest algorithm"), "{unsupported}");
        }
    }

    #[test]
    fn uppercase_grammar_cases() {
        // The first component is a registry only with a `.` or a `:`, or as `localhost`.
        for bad in ["A:tag", "a/B", "Foo/bar", "LOCALHOST/app", "a/b/C:tag", "[::1]:5000/App"] {
            assert_eq!(image_problem(bad).as_deref(), Some("repository name must be lowercase"), "{bad}");
        }
        for ok in ["REGISTRY.local/app", "Host:5000/app", "a:TAG"] {
            assert_eq!(image_problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn repository_length_is_docker_s() {
        let too_long = "repository name must not be more than 255 characters";
        // The registry does not count.
        assert_eq!(image_problem(&format!("example.com/{}", "a".repeat(255))), None);
        assert_eq!(image_problem(&format!("example.com/{}", "a".repeat(256))).as_deref(), Some(too_long));
        assert_eq!(image_problem(&format!("x/{}", "a".repeat(253))), None);
        assert_eq!(image_problem(&format!("x/{}", "a".repeat(254))).as_deref(), Some(too_long));
        // Docker Hub puts `library/` before a one-component repository.
        for hub in ["", "docker.io/", "index.docker.io/"] {
            assert_eq!(image_problem(&format!("{hub}{}", "a".repeat(247))), None, "{hub}");
            assert_eq!(image_problem(&format!("{hub}{}:t", "a".repeat(248))).as_deref(), Some(too_long), "{hub}");
        }
        // The grammar comes first, the digest's algorithm last.
        let bad_and_long = format!("example.com/{}:-", "a".repeat(300));
        assert_eq!(image_problem(&bad_and_long).as_deref(), Some("invalid reference format"));
        let long_md5 = format!("example.com/{}@md5:{HEX64}", "a".repeat(300));
        assert_eq!(image_problem(&long_md5).as_deref(), Some(too_long));
    }
}
