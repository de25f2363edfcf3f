//! Views: neutral messages and forms built from templates, for the handlers and the pages.
//! Pure apart from template lookups.

mod forms;
mod help;
mod plans;
mod tickets;

pub use forms::*;
pub use help::*;
pub use plans::*;
pub use tickets::*;

#[cfg(test)]
mod tests {
    use crate::chat::texts::duration;
    use crate::chat::Texts;

    #[test]
    fn durations_read_naturally_in_both_languages() {
        let en = Texts::new("en").unwrap();
        let zh = Texts::new("zh-CN").unwrap();
        let cases = [
            (0, "0s", "0 秒"),
            (45, "45s", "45 秒"),
            (300, "5m", "5 分钟"),
            (3930, "1h 5m 30s", "1 小时5 分钟30 秒"),
            (3600, "1h", "1 小时"),
        ];
        for (secs, e, z) in cases {
            assert_eq!(duration(&en, secs).unwrap(), e);
            assert_eq!(duration(&zh, secs).unwrap(), z);
        }
    }
}
