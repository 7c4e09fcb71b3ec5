//! The invitation's QR code, drawn here as SVG (no image service, no script).

/// An SVG QR code of `link` (None: too long for a QR code).
pub fn svg(link: &str) -> Option<String> {
    let code = qrcode::QrCode::new(link.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(240, 240)
            .quiet_zone(true)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_link_becomes_an_svg_and_a_huge_one_does_not() {
        let s = super::svg("http://127.0.0.1:8080/?_oobid=abc").unwrap();
        assert!(s.starts_with("<?xml") && s.contains("<svg") && s.contains("</svg>"), "{s}");
        assert!(super::svg(&"x".repeat(5000)).is_none());
    }
}
