//! Helpers shared by the fuzz targets: `props`, the properties each target
//! checks (with the input framing, a checksum fixer and the rendered-config
//! structure check), and `nginx_gen`, a generator of structured nginx
//! declarations.

pub mod nginx_gen;
pub mod props;

pub use props::{Framed, Repair, check_structure, frame};

#[cfg(test)]
mod tests {
    use super::props::internet_checksum;

    #[test]
    fn checksum_of_rfc_1071_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2 (one's complement 220d).
        assert_eq!(
            internet_checksum(&[&[0x00, 0x01, 0xf2, 0x03], &[0xf4, 0xf5, 0xf6, 0xf7]]),
            !0xddf2
        );
    }
}
