//! notrace: the `klp.notrace` custom section naming functions the ftrace pass must not hook.

/// Lists functions in the `klp.notrace` custom section, one name per line. The host's
/// instrumentation pass keeps direct calls to them and refuses them as patch targets.
/// Every name must be an in-scope `#[no_mangle]` function, so the section names real symbols.
macro_rules! notrace {
    ($($name:ident),+ $(,)?) => {
        $(
            const _: () = {
                let _ = $name;
                const LINE: &str = concat!(stringify!($name), "\n");
                #[unsafe(link_section = "klp.notrace")]
                #[used]
                static NOTRACE: [u8; LINE.len()] = $crate::notrace::line(LINE);
            };
        )+
    };
}

/// `s` as a byte array of exactly its length (for the section statics).
pub const fn line<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0; N];
    let mut i = 0;
    while i < N {
        out[i] = s.as_bytes()[i];
        i += 1;
    }
    out
}
