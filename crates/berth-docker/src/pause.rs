//! berth's own pause image, for awsvpc tasks: one static program (`pause/pause.S`, 4.6 KB
//! of x86_64 code that waits for signals and exits 0 on SIGTERM or SIGINT) in an image
//! berth makes on the host with Docker's import, never pulled (like the seed's emptyvolume
//! image). No toolchain is needed at run time: the program's bytes are built into berth.

/// The pause program (built from `pause/pause.S`, see the command in that file).
pub const PAUSE_PROGRAM: &[u8] = include_bytes!("../pause/pause");

/// Where the program sits in the image, and its command.
pub const PAUSE_PATH: &str = "/pause";

/// The image's root filesystem, as the tar stream `docker import` takes: `/pause`, mode 0755.
pub fn pause_rootfs() -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(PAUSE_PROGRAM.len() as u64);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, PAUSE_PATH.trim_start_matches('/'), PAUSE_PROGRAM)?;
    builder.into_inner()
}

/// The fingerprint of the pause program (64-bit FNV-1a of its bytes, hex): berth labels
/// its pause image with it ([`crate::labels::PAUSE`]) and uses an image of the pause tag
/// only when the label matches, never because the tag is present.
pub fn pause_fingerprint() -> String {
    format!("{:016x}", berth_model::fnv1a_64(PAUSE_PROGRAM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_is_a_static_x86_64_elf() {
        assert_eq!(&PAUSE_PROGRAM[..4], b"\x7fELF");
        assert_eq!(PAUSE_PROGRAM[4], 2, "64-bit");
        assert_eq!(PAUSE_PROGRAM[18], 0x3e, "x86_64");
    }

    #[test]
    fn the_rootfs_holds_the_program() {
        let tar = pause_rootfs().unwrap_or_else(|e| panic!("{e}"));
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(Result::ok)
            .map(|e| {
                let path = e.path().map(|p| p.display().to_string()).unwrap_or_default();
                (path, e.header().mode().unwrap_or(0), e.header().size().unwrap_or(0))
            })
            .collect();
        assert_eq!(entries, [("pause".to_string(), 0o755, PAUSE_PROGRAM.len() as u64)]);
        let fingerprint = pause_fingerprint();
        assert_eq!(fingerprint.len(), 16);
        assert_eq!(fingerprint, pause_fingerprint());
    }

    #[test]
    fn the_embedded_bytes_are_built_from_the_source_when_binutils_are_here() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pause");
        let out = std::env::temp_dir().join(format!("berth-pause-test-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{e}"));
        let (obj, bin) = (out.join("pause.o"), out.join("pause"));
        let assembled = std::process::Command::new("as")
            .args(["--64", "-o"])
            .arg(&obj)
            .arg(dir.join("pause.S"))
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let linked = assembled
            && std::process::Command::new("ld")
                .args(["-static", "-n", "-s", "-o"])
                .arg(&bin)
                .arg(&obj)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        // binutils come with gcc on this project's machines; without them nothing to compare.
        assert!(linked, "as and ld (binutils) are needed to check the pause program");
        let built = std::fs::read(&bin).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&out);
        assert_eq!(built, PAUSE_PROGRAM, "pause/pause is pause/pause.S built");
    }
}
