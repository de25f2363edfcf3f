//! DingTalk signatures. Inbound (enterprise robot): headers `timestamp` (ms) and
//! `sign` = Base64(HMAC-SHA256(appSecret, timestamp + "\n" + appSecret)). DingTalk
//! accepts an hour of skew; it sends at once, so five minutes is all a request needs
//! (the window Slack uses), and each pair is accepted once (`store::signatures`), since
//! the signature does not cover the body. Outbound (group robot webhook): the same construction over the webhook secret,
//! URL-encoded into `&timestamp=…&sign=…`.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Requests older (or newer) than this are refused.
pub const MAX_SKEW_MS: i64 = 5 * 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    MissingHeaders,
    Stale,
    BadSignature,
}

pub fn sign(secret: &str, timestamp_ms: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp_ms.as_bytes());
    mac.update(b"\n");
    mac.update(secret.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub fn verify(secret: &str, timestamp: Option<&str>, signature: Option<&str>, now_ms: i64) -> Result<(), VerifyError> {
    let (Some(ts), Some(sig)) = (timestamp, signature) else {
        return Err(VerifyError::MissingHeaders);
    };
    let t: i64 = ts.trim().parse().map_err(|_| VerifyError::MissingHeaders)?;
    if (now_ms - t).abs() > MAX_SKEW_MS {
        return Err(VerifyError::Stale);
    }
    let expected = sign(secret, ts.trim());
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(sig.trim().as_bytes())) {
        return Err(VerifyError::BadSignature);
    }
    Ok(())
}

/// The group robot webhook URL with its signature appended (encoded once).
pub fn signed_webhook(url: &str, secret: Option<&str>, now_ms: i64) -> String {
    let Some(secret) = secret else {
        return url.to_string();
    };
    let ts = now_ms.to_string();
    let sign: String = url::form_urlencoded::byte_serialize(sign(secret, &ts).as_bytes()).collect();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}timestamp={ts}&sign={sign}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_checks_with_a_five_minute_window() {
        let s = sign("secret", "1700000000000");
        assert_eq!(
            verify("secret", Some("1700000000000"), Some(&s), 1_700_000_000_000),
            Ok(())
        );
        assert_eq!(
            verify(
                "secret",
                Some("1700000000000"),
                Some(&s),
                1_700_000_000_000 + MAX_SKEW_MS + 1
            ),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify("other", Some("1700000000000"), Some(&s), 1_700_000_000_000),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(verify("secret", None, Some(&s), 0), Err(VerifyError::MissingHeaders));
    }

    #[test]
    fn the_webhook_signature_is_url_encoded_once() {
        let u = signed_webhook(
            "https://oapi.dingtalk.com/robot/send?access_token=x",
            Some("SECabc"),
            1_700_000_000_000,
        );
        let sign = sign("SECabc", "1700000000000");
        let encoded: String = url::form_urlencoded::byte_serialize(sign.as_bytes()).collect();
        assert!(u.ends_with(&format!("&timestamp=1700000000000&sign={encoded}")), "{u}");
        assert!(!u.contains("%25"), "not encoded twice: {u}");
    }
}
