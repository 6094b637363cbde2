//! TEMPORARY placeholder until the export module lands.
use appforge_shared::protocol::{ArchiveFormat, FileContent};
pub fn export_files(_n: &str, _p: &str, files: &[FileContent]) -> Vec<FileContent> {
    files.to_vec()
}
pub fn archive_root(n: &str) -> String {
    n.to_string()
}
pub fn build_archive(
    _f: ArchiveFormat,
    _r: &str,
    _files: &[FileContent],
) -> Result<Vec<u8>, std::io::Error> {
    Ok(vec![])
}
