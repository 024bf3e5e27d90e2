//! Pull progress for `berth run`: progress bars (indicatif) on a terminal, one plain line
//! per layer step otherwise (never a line per chunk of bytes).

use berth_docker::PullProgress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Show the pulls reported on `reports` until the engine goes away.
pub fn show(mut reports: broadcast::Receiver<PullProgress>, width: usize) -> JoinHandle<()> {
    let terminal = std::io::stdout().is_terminal();
    tokio::spawn(async move {
        let mut view = if terminal { View::Bars(Bars::new()) } else { View::Lines(HashMap::new()) };
        loop {
            match reports.recv().await {
                Ok(p) => view.show(&p, width),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

enum View {
    Bars(Bars),
    /// The last status printed for each (image, layer).
    Lines(HashMap<(String, String), String>),
}

impl View {
    fn show(&mut self, p: &PullProgress, width: usize) {
        match self {
            View::Bars(bars) => bars.show(p),
            View::Lines(seen) => {
                if let Some(line) = plain_line(seen, p) {
                    println!("{:width$} | {line}", "berth");
                }
            }
        }
    }
}

/// The line to print for `p`, if its status is new for its layer.
fn plain_line(seen: &mut HashMap<(String, String), String>, p: &PullProgress) -> Option<String> {
    let key = (p.image.clone(), p.layer.clone());
    if seen.get(&key) == Some(&p.status) {
        return None;
    }
    seen.insert(key, p.status.clone());
    let total = p.total.map(|t| format!(" ({})", indicatif::HumanBytes(t))).unwrap_or_default();
    Some(if p.layer.is_empty() {
        format!("pull {}: {}", p.image, p.status)
    } else {
        format!("pull {} {}: {}{total}", p.image, p.layer, p.status)
    })
}

struct Bars {
    multi: MultiProgress,
    bars: HashMap<(String, String), ProgressBar>,
}

impl Bars {
    fn new() -> Bars {
        Bars { multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()), bars: HashMap::new() }
    }

    fn show(&mut self, p: &PullProgress) {
        let key = (p.image.clone(), p.layer.clone());
        let multi = &self.multi;
        let bar = self.bars.entry(key).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(0));
            let style = ProgressStyle::with_template("{prefix} {msg:20} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(if p.layer.is_empty() { p.image.clone() } else { format!("{} {}", p.image, p.layer) });
            bar
        });
        bar.set_message(p.status.clone());
        if let Some(total) = p.total {
            bar.set_length(total);
        }
        if let Some(current) = p.current {
            bar.set_position(current);
        }
        if matches!(p.status.as_str(), "Pull complete" | "Already exists" | "Download complete") {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(layer: &str, status: &str, current: Option<u64>) -> PullProgress {
        PullProgress {
            image: "busybox:latest".into(),
            layer: layer.into(),
            status: status.into(),
            current,
            total: current.map(|_| 2_000_000),
        }
    }

    #[test]
    fn plain_lines_say_each_step_once_not_each_chunk() {
        let mut seen = HashMap::new();
        let lines: Vec<String> = [
            step("", "Pulling from library/busybox", None),
            step("a1", "Pulling fs layer", None),
            step("a1", "Downloading", Some(100)),
            step("a1", "Downloading", Some(900_000)),
            step("a1", "Downloading", Some(2_000_000)),
            step("a1", "Pull complete", None),
        ]
        .iter()
        .filter_map(|p| plain_line(&mut seen, p))
        .collect();
        assert_eq!(
            lines,
            [
                "pull busybox:latest: Pulling from library/busybox",
                "pull busybox:latest a1: Pulling fs layer",
                "pull busybox:latest a1: Downloading (1.91 MiB)",
                "pull busybox:latest a1: Pull complete",
            ]
        );
    }
}
