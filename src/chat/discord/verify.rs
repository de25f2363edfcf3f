//! Discord request signing: Ed25519 over `timestamp ++ body`, hex signature header.

/// Checks Discord's request signatures with the application's public key.
pub struct Verifier(serenity::interactions_endpoint::Verifier);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    MissingHeaders,
    BadSignature,
}

/// A verifier for the application's public key (64 hex characters).
pub fn verifier(public_key_hex: &str) -> anyhow::Result<Verifier> {
    let bytes = hex::decode(public_key_hex.trim())
        .map_err(|_| anyhow::anyhow!("DISCORD_PUBLIC_KEY must be 64 hexadecimal characters"))?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("DISCORD_PUBLIC_KEY must be 64 hexadecimal characters"))?;
    serenity::interactions_endpoint::Verifier::try_new(key)
        .map(Verifier)
        .map_err(|_| anyhow::anyhow!("DISCORD_PUBLIC_KEY is not a valid Ed25519 public key"))
}

pub fn verify(
    verifier: &Verifier,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
) -> Result<(), VerifyError> {
    let (Some(sig), Some(ts)) = (signature, timestamp) else {
        return Err(VerifyError::MissingHeaders);
    };
    verifier
        .0
        .verify(sig.trim(), ts.trim(), body)
        .map_err(|_| VerifyError::BadSignature)
}
