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
