//! The model files embedded in the binary (see build.rs and models/manifest.json).

use serde::Deserialize;

include!(concat!(env!("OUT_DIR"), "/embedded_models.rs"));

/// One entry of models/manifest.json.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub kind: String,
    pub description: String,
    pub package: String,
    pub version: String,
    pub licence: String,
    pub files: Vec<FileInfo>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FileInfo {
    pub member: String,
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

pub fn manifest() -> Vec<ModelInfo> {
    serde_json::from_str(include_str!("../../models/manifest.json"))
        .expect("the manifest was checked by build.rs")
}

/// The bytes of an embedded file, by its path under models/ (`smollm2-135m-instruct/model.gguf`).
pub fn file(path: &str) -> Option<&'static [u8]> {
    EMBEDDED_FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, b)| *b)
}

pub const CHAT_MODEL: &str = "smollm2-135m-instruct";
pub const EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

/// Tells the kernel that the pages of an embedded file are not needed any more (the model was
/// copied out of them), so they stop counting as this process's resident memory. They are read
/// again from the executable if a model is ever loaded a second time.
pub fn release(bytes: &'static [u8]) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let start = bytes.as_ptr() as usize;
        let first = start.div_ceil(page) * page;
        let end = (start + bytes.len()) / page * page;
        if end > first {
            // SAFETY: the range lies inside a read-only mapping of the executable that lives for
            // the whole process; MADV_DONTNEED on a private file mapping only drops cached pages,
            // which later reads fault back in unchanged.
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_DONTNEED);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = bytes;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_manifest_file_is_embedded_with_its_size() {
        for m in manifest() {
            for f in &m.files {
                let bytes = file(&f.file).unwrap_or_else(|| panic!("{} is not embedded", f.file));
                assert_eq!(bytes.len() as u64, f.size, "{}", f.file);
            }
        }
        assert!(manifest().iter().any(|m| m.name == CHAT_MODEL));
        assert!(manifest().iter().any(|m| m.name == EMBEDDING_MODEL));
    }
}
