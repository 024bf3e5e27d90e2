//! What `berth run` writes to the terminal: its lines ([`Console`]) and pull progress —
//! progress bars (indicatif) on a terminal, one plain line per layer step otherwise (never
//! a line per chunk of bytes).
//!
//! On a terminal every line goes through the bars' [`MultiProgress`], which prints it above
//! them: a line written beside it would be taken for part of the bars and erased by their
//! next redraw (state changes printed after a pull were lost that way).

use berth_docker::PullProgress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Where `berth run` writes: `who | text` lines on stdout and berth's own messages on
/// stderr. A write that fails (a closed terminal after SIGHUP, a closed pipe) is dropped,
/// never a panic, so that the task is still stopped and cleaned up.
#[derive(Clone, Debug)]
pub struct Console {
    /// The bars, when stdout is a terminal indicatif draws on.
    bars: Option<MultiProgress>,
    /// Whether stderr shows on the bars' terminal too.
    stderr_on_bars: bool,
    /// Width of the `who` column.
    width: usize,
}

impl Console {
    /// A console whose `who` column is `width` wide.
    pub fn new(width: usize) -> Console {
        let bars =
            std::io::stdout().is_terminal().then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
        // indicatif draws nothing on a dumb terminal.
        let bars = bars.filter(|m| !m.is_hidden());
        Console { bars, stderr_on_bars: std::io::stderr().is_terminal(), width }
    }

    /// The same console (the same bars) with a `who` column `width` wide.
    pub fn with_width(&self, width: usize) -> Console {
        Console { width, ..self.clone() }
    }

    /// Print `who | text` (one line; `text` has no line end).
    pub fn line(&self, who: &str, text: &str) {
        let width = self.width;
        let line = format!("{who:width$} | {text}");
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(line);
            }
            None => {
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
        }
    }

    /// Print one of berth's own messages on stderr (above the bars when they share its
    /// terminal).
    pub fn note(&self, text: &str) {
        match &self.bars {
            Some(bars) if self.stderr_on_bars => {
                let _ = bars.println(text);
            }
            _ => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }
}

/// Show the pulls reported on `reports` until the engine goes away.
pub fn show(mut reports: broadcast::Receiver<PullProgress>, console: Console) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut view = match &console.bars {
            Some(multi) => View::Bars(Bars::new(multi.clone())),
            None => View::Lines(HashMap::new()),
        };
        loop {
            match reports.recv().await {
                Ok(p) => view.show(&p, &console),
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
    fn show(&mut self, p: &PullProgress, console: &Console) {
        match self {
            View::Bars(bars) => bars.show(p, console),
            View::Lines(seen) => {
                if let Some(line) = plain_line(seen, p) {
                    console.line("berth", &line);
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

/// One bar per layer; the image's own messages ("Pulling from", "Digest", "Status") are
/// lines, as they have no bytes to count.
struct Bars {
    multi: MultiProgress,
    /// Each layer's bar, and whether it counts bytes yet.
    bars: HashMap<(String, String), (ProgressBar, bool)>,
    /// The image's messages already printed.
    said: HashMap<String, String>,
}

impl Bars {
    fn new(multi: MultiProgress) -> Bars {
        Bars { multi, bars: HashMap::new(), said: HashMap::new() }
    }

    fn show(&mut self, p: &PullProgress, console: &Console) {
        // "Pulling from" comes with the tag as its id, not a layer's.
        if p.layer.is_empty() || p.status.starts_with("Pulling from") {
            if self.said.get(&p.image) != Some(&p.status) {
                self.said.insert(p.image.clone(), p.status.clone());
                // The pull's end ("Status: Downloaded newer image..."): its bars go, so that
                // they do not stay below the lines printed after them.
                if p.status.starts_with("Status:") {
                    self.bars.retain(|(image, _), (bar, _)| {
                        if *image == p.image {
                            bar.finish_and_clear();
                        }
                        *image != p.image
                    });
                }
                console.line("berth", &format!("pull {}: {}", p.image, p.status));
            }
            return;
        }
        let key = (p.image.clone(), p.layer.clone());
        let multi = &self.multi;
        let (bar, counting) = self.bars.entry(key).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(message_style());
            bar.set_prefix(format!("{} {}", p.image, p.layer));
            (bar, false)
        });
        bar.set_message(p.status.clone());
        // A step without byte counts ("Waiting", "Verifying Checksum") is a message; the
        // bar appears once a step has a total.
        if let Some(total) = p.total.filter(|t| *t > 0) {
            if !*counting {
                bar.set_style(bytes_style());
                *counting = true;
            }
            bar.set_length(total);
            bar.set_position(p.current.unwrap_or(0));
        } else if *counting {
            bar.set_style(message_style());
            *counting = false;
        }
        if matches!(p.status.as_str(), "Pull complete" | "Already exists") {
            bar.finish();
        }
    }
}

fn message_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix} {msg:20} [{bar:30}] {bytes}/{total_bytes}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
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
