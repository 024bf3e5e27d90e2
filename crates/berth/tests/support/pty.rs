//! Running a command on a pseudo-terminal (its stdin, stdout and stderr), and what a
//! terminal would show of its output: [`Screen`] follows the few control sequences
//! progress bars use (cursor up and down, clear line, clear below) and wraps at [`COLUMNS`]
//! as a terminal does (progress bars pad their lines to the width and count on it), so a
//! line a redraw erased is gone from it, as it would be from the user's terminal.

use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{Winsize, tcsetwinsize};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Columns of the pseudo-terminal, wide enough for the tests' lines.
pub const COLUMNS: u16 = 400;

/// Run `cmd` with a new pseudo-terminal (50 rows, [`COLUMNS`] columns) as its stdin, stdout
/// and stderr; return its exit status and every byte it wrote, read until it exited and
/// closed the terminal. Fails the test after `limit`.
pub fn run(mut cmd: Command, limit: Duration) -> (ExitStatus, Vec<u8>) {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let size = Winsize { ws_row: 50, ws_col: COLUMNS, ws_xpixel: 0, ws_ypixel: 0 };
    tcsetwinsize(&master, size).expect("set the window size");
    let path = std::path::PathBuf::from(name.to_string_lossy().into_owned());
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    cmd.stdin(Stdio::from(open())).stdout(Stdio::from(open())).stderr(Stdio::from(open()));
    let mut child = cmd.spawn().expect("spawning the command");
    // The command holds the terminal's other side; this process must not, or reading would
    // never end.
    drop(cmd);
    let mut master = File::from(master);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        // EIO once every holder of the other side closed it.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the command") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the command did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, reader.join().expect("the reader thread"))
}

/// What a terminal shows after the bytes fed to it (no scrolling limit): text wraps to the
/// next line when a character is written past the last column.
#[derive(Debug, Default)]
pub struct Screen {
    lines: Vec<Vec<char>>,
    row: usize,
    col: usize,
}

impl Screen {
    /// The screen after `bytes`.
    pub fn of(bytes: &[u8]) -> Screen {
        let mut screen = Screen { lines: vec![Vec::new()], ..Screen::default() };
        let text = String::from_utf8_lossy(bytes);
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\x1b' => {
                    if chars.peek() != Some(&'[') {
                        chars.next();
                        continue;
                    }
                    chars.next();
                    let mut params = String::new();
                    let mut end = None;
                    for p in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&p) {
                            end = Some(p);
                            break;
                        }
                        params.push(p);
                    }
                    if let Some(end) = end {
                        screen.control(end, &params);
                    }
                }
                '\r' => screen.col = 0,
                '\n' => screen.down(1),
                '\x08' => screen.col = screen.col.saturating_sub(1),
                c if c < ' ' => {}
                c => {
                    if screen.col >= usize::from(COLUMNS) {
                        screen.col = 0;
                        screen.down(1);
                    }
                    let line = &mut screen.lines[screen.row];
                    if line.len() <= screen.col {
                        line.resize(screen.col + 1, ' ');
                    }
                    line[screen.col] = c;
                    screen.col += 1;
                }
            }
        }
        screen
    }

    fn down(&mut self, n: usize) {
        self.row += n;
        if self.lines.len() <= self.row {
            self.lines.resize(self.row + 1, Vec::new());
        }
    }

    /// A control sequence `ESC [ params end`.
    fn control(&mut self, end: char, params: &str) {
        let n: usize = params.parse().unwrap_or(0);
        match end {
            'A' => self.row = self.row.saturating_sub(n.max(1)),
            'B' => self.down(n.max(1)),
            'C' => self.col += n.max(1),
            'D' => self.col = self.col.saturating_sub(n.max(1)),
            'G' => self.col = n.saturating_sub(1),
            'K' => {
                let line = &mut self.lines[self.row];
                match n {
                    0 => line.truncate(self.col),
                    1 => line.iter_mut().take(self.col + 1).for_each(|c| *c = ' '),
                    _ => line.clear(),
                }
            }
            'J' => match n {
                0 => {
                    self.lines[self.row].truncate(self.col);
                    self.lines.truncate(self.row + 1);
                }
                _ => self.lines.iter_mut().for_each(Vec::clear),
            },
            // Colours, cursor visibility and the rest change no text.
            _ => {}
        }
    }

    /// The lines shown, without trailing blanks.
    pub fn text(&self) -> Vec<String> {
        self.lines.iter().map(|l| l.iter().collect::<String>().trim_end().to_string()).collect()
    }
}
