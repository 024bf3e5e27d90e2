//! Shape 4: the seed's own task payload.
//!
//! ```json
//! {"arn": "...", "family": "web", "version": "3", "desiredStatus": "RUNNING",
//!  "volumes": [{"name": "data", "host": {"sourcePath": "/srv/data"}}],
//!  "containers": [{"name": "web", "image": "nginx", "environment": {"KEY": "value"},
//!                  "desiredStatus": "RUNNING", ...}]}
//! ```
//!
//! Decisions where the SPEC leaves room:
//! - the containers take every ECS container field as well (the seed's fields are a subset
//!   of them), except that `environment` is a `{"KEY": "value"}` map and `desiredStatus`
//!   is allowed;
//! - `networkMode` is accepted at task level, as in the ECS shapes;
//! - `desiredStatus` (task or container) is `RUNNING` (the default) or `STOPPED`: a task
//!   only ever moves towards its desired status, and those are the two the seed's
//!   backend sends;
//! - `arn`, when given, is at most 1,024 characters without control characters, and its
//!   last `/`-separated part (by which APIs and Docker names refer to the task) is not
//!   empty.

use super::Draft;
use super::ecs::{Flavor, read_containers, read_network_mode, read_volumes};
use super::reader::{Obj, Sink, quote};
use super::validate::check_name;
use crate::status::TaskStatus;
use crate::task::arn_last_part;

/// Longest task arn accepted.
const MAX_ARN_LEN: usize = 1024;

/// Read the seed payload.
pub(crate) fn read_seed(mut o: Obj<'_>, s: &mut Sink) -> Draft {
    let mut d = Draft::empty(&o.path_of("family"), &o.path_of("containers"));
    if let Some(arn) = o.non_empty_string("arn", s) {
        if arn.len() > MAX_ARN_LEN || arn.chars().any(char::is_control) || arn_last_part(&arn).is_empty() {
            s.error(
                &o.path_of("arn"),
                format!(
                    "{} is not a usable task arn: at most {MAX_ARN_LEN} characters, no control characters, and \
                     not ending in \"/\"",
                    quote(&arn)
                ),
            );
        }
        d.arn = Some(arn);
    }
    if let Some(family) = o.non_empty_string("family", s) {
        check_name(&o.path_of("family"), &family, "family", s);
        d.family = Some(family);
    }
    d.version = o.non_empty_string("version", s);
    if let Some(f) = o.field("desiredStatus") {
        match f.string(s) {
            Some("RUNNING") => {}
            Some("STOPPED") => d.desired_status = TaskStatus::Stopped,
            Some(other) => s.error(&f.path, format!("expected \"RUNNING\" or \"STOPPED\", found {}", quote(other))),
            None => {}
        }
    }
    d.network_mode = read_network_mode(&mut o, s);
    let containers = o.field("containers");
    read_containers(containers, Flavor::Seed, &mut d, s);
    d.volumes = read_volumes(o.field("volumes"), s);
    o.finish(s);
    d
}
