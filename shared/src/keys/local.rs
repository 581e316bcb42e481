//! `LocalSigner`: an ES256 key generated on first start and kept in the data directory
//! (`signing-key.pem`, PKCS#8, mode 0600). Several processes on one data directory agree on
//! one key: the file is created by an atomic no-clobber link.
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use super::{EcKey, KeyError, KeySet, Signer, SigningKey};

/// Signs with a key file in the data directory.
pub struct LocalSigner {
    key: Arc<EcKey>,
    keys: Arc<KeySet>,
}

impl LocalSigner {
    /// Loads `signing-key.pem` from `dir`, generating it on first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        let io = |e: std::io::Error| KeyError::Invalid(format!("signing key in {}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join("signing-key.pem");
        crate::store::remove_stale_temporaries(dir);
        if !path.exists() {
            let key = EcKey::generate();
            let pem = key
                .to_pkcs8_der()?
                .to_pem("PRIVATE KEY", Default::default())
                .map_err(|e| KeyError::Invalid(e.to_string()))?;
            // No-clobber: if another process won the race, its key stands and ours is dropped.
            crate::store::create_private_file(&path, pem.as_bytes()).map_err(io)?;
        }
        // The text read is wiped when dropped, as `SecretDocument` and the signing key are.
        let doc = crate::store::read_private_file(
            &path,
            |pem| p256::pkcs8::SecretDocument::from_pem(pem).ok().map(|(_, doc)| doc),
            |pem| match p256::pkcs8::SecretDocument::from_pem(pem) {
                Err(e) => format!("not a PKCS#8 PEM private key ({e})"),
                Ok(_) => "unreadable".into(),
            },
        )
        .map_err(|e| KeyError::Invalid(format!("{}: {e}", path.display())))?;
        Self::from_key(EcKey::from_pkcs8_der(doc.as_bytes())?)
    }

    fn from_key(key: EcKey) -> Result<Self, KeyError> {
        let keys = Arc::new(KeySet::new([key.jwk.clone()])?);
        Ok(Self { key: Arc::new(key), keys })
    }

    /// An in-memory key (tests and benchmarks).
    pub fn ephemeral() -> Self {
        Self::from_key(EcKey::generate()).expect("a fresh P-256 key is valid")
    }
}

#[async_trait]
impl Signer for LocalSigner {
    fn current(&self) -> Result<Arc<dyn SigningKey>, KeyError> {
        Ok(self.key.clone())
    }

    fn keys(&self) -> Arc<KeySet> {
        self.keys.clone()
    }
}
