//! Image references, checked against Docker's reference grammar
//! (`[registry[:port]/]repository[:tag][@digest]`) with `oci-spec`'s
//! [`oci_spec::distribution::Reference`].
//!
//! Two additions to what `oci-spec` checks, so that berth refuses what Docker refuses:
//! - the reference must be ASCII (the grammar's `\w` in tags is ASCII in Docker's regular
//!   expressions, Unicode in Rust's);
//! - a repository with upper-case letters is reported as such ("repository name must be
//!   lowercase", Docker's own words) rather than as a bad format.
//!
//! Templating left in an image (`<IMAGE1_NAME>`, `${REPO}:tag`, `{{.Image}}`) is not a
//! valid reference, so such a task definition is refused before anything is pulled.

use oci_spec::distribution::Reference;
use std::str::FromStr;

/// Why `image` is not a reference Docker would accept, or `None` when it is one.
pub(crate) fn image_problem(image: &str) -> Option<String> {
    if !image.is_ascii() {
        return Some("invalid reference format".to_string());
    }
    let err = Reference::from_str(image).err()?;
    if repo_has_uppercase(image) && Reference::from_str(&image.to_ascii_lowercase()).is_ok() {
        Some("repository name must be lowercase".to_string())
    } else {
        Some(err.to_string())
    }
}

/// Whether the repository part (after any registry, before any tag or digest) has an
/// upper-case letter. Registries and tags may have them; repositories may not.
fn repo_has_uppercase(image: &str) -> bool {
    let name = image.split('@').next().unwrap_or(image);
    // The first component is a registry when it looks like a host: it has a `.` or a `:`,
    // or is `localhost` (the rule Docker's reference parser uses).
    let repo_and_tag = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => name,
    };
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
}
