//! Neutral message text (Slack-flavoured: `*bold*`, `<url|label>`, HTML-escaped user
//! text, `<@platform:user>` mentions) to CommonMark-like markdown for Discord and DingTalk.

/// Converts neutral text; `mention(platform, user)` renders each mention token.
pub fn to_markdown(text: &str, mention: &dyn Fn(&str, &str) -> String) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&bold(&rest[..start]));
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            out.push_str(&bold(&rest[start..]));
            rest = "";
            break;
        };
        let inner = &after[..end];
        if let Some((platform, user)) = inner.strip_prefix('@').and_then(|m| m.split_once(':')) {
            out.push_str(&mention(platform, user));
        } else if let Some((url, label)) = inner.split_once('|') {
            out.push_str(&format!("[{label}]({url})"));
        } else if inner.starts_with("http") {
            out.push_str(inner);
        } else {
            out.push('<');
            out.push_str(inner);
            out.push('>');
        }
        rest = &after[end + 1..];
    }
    out.push_str(&bold(rest));
    unescape(&out)
}

/// `*bold*` to `**bold**` (single asterisks that pair up on one line).
fn bold(s: &str) -> String {
    s.split('\n')
        .map(|line| {
            let parts: Vec<&str> = line.split('*').collect();
            if parts.len() < 3 || parts.len().is_multiple_of(2) {
                return line.to_string();
            }
            let mut l = String::with_capacity(line.len() + 4);
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    l.push_str("**");
                }
                l.push_str(p);
            }
            l
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Undoes the HTML escaping of user text: these platforms show entities literally.
pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_bold_links_mentions_and_entities() {
        let m = |p: &str, u: &str| format!("@{u}({p})");
        assert_eq!(
            to_markdown("*REL-1* by <@discord:42> see <https://x.io|docs> &lt;b&gt; &amp;", &m),
            "**REL-1** by @42(discord) see [docs](https://x.io) <b> &"
        );
        assert_eq!(to_markdown("a * b", &m), "a * b");
        assert_eq!(to_markdown("*a* and *b*", &m), "**a** and **b**");
    }
}
