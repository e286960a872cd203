//! Colours of the heap map: one per object type, one for free space.

use heapscope_protocol::ObjType;
use ratatui::style::Color;

pub const FREE: Color = Color::Rgb(28, 28, 36);
pub const CURSOR: Color = Color::Rgb(255, 255, 255);
pub const CHANGED: Color = Color::Rgb(255, 80, 200);
pub const ALLOCATED: Color = Color::Rgb(80, 220, 100);
pub const FREED: Color = Color::Rgb(230, 70, 60);
pub const KEPT: Color = Color::Rgb(90, 90, 110);

pub fn of(t: ObjType) -> Color {
    match t {
        ObjType::Unknown => Color::Rgb(120, 120, 120),
        ObjType::Other => Color::Rgb(150, 150, 170),
        ObjType::Tuple => Color::Rgb(0, 190, 190),
        ObjType::List => Color::Rgb(70, 130, 255),
        ObjType::Dict => Color::Rgb(200, 90, 230),
        ObjType::Str => Color::Rgb(90, 200, 90),
        ObjType::ByteArray => Color::Rgb(230, 200, 40),
        ObjType::Float => Color::Rgb(255, 130, 100),
        ObjType::Function => Color::Rgb(120, 200, 255),
        ObjType::Module => Color::Rgb(240, 240, 180), // not white: white is the cursor
        ObjType::Set => Color::Rgb(140, 240, 220),
        ObjType::Int => Color::Rgb(255, 230, 140),
        ObjType::Closure => Color::Rgb(255, 140, 220),
        ObjType::BoundMethod => Color::Rgb(180, 160, 255),
        ObjType::Instance => Color::Rgb(160, 255, 120),
        ObjType::Type => Color::Rgb(255, 90, 90),
    }
}

/// A colour at half brightness: a pixel that is mostly free.
pub fn dim(c: Color) -> Color {
    match c {
        Color::Rgb(r, g, b) => Color::Rgb(r / 2 + 14, g / 2 + 14, b / 2 + 18),
        other => other,
    }
}

/// How the terminal shows colour: 24-bit, the 256-colour palette, or not at all (`NO_COLOR`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorMode {
    #[default]
    TrueColor,
    Ansi256,
    /// No colour: the map draws letters instead.
    None,
}

impl ColorMode {
    /// From the environment: `NO_COLOR` (any non-empty value, no-color.org) turns colour off;
    /// `COLORTERM=truecolor|24bit` allows 24-bit colour; anything else gets the 256 colours
    /// every modern terminal has.
    pub fn from_env(no_color: Option<&str>, colorterm: Option<&str>) -> ColorMode {
        if no_color.is_some_and(|v| !v.is_empty()) {
            ColorMode::None
        } else if colorterm.is_some_and(|v| v.eq_ignore_ascii_case("truecolor") || v.eq_ignore_ascii_case("24bit")) {
            ColorMode::TrueColor
        } else {
            ColorMode::Ansi256
        }
    }

    pub fn detect() -> ColorMode {
        let var = |name| std::env::var(name).ok();
        ColorMode::from_env(var("NO_COLOR").as_deref(), var("COLORTERM").as_deref())
    }

    /// Rewrites a drawn frame's colours for this mode (drawing always uses 24-bit colours).
    pub fn adapt(self, buf: &mut ratatui::buffer::Buffer) {
        let convert: fn(Color) -> Color = match self {
            ColorMode::TrueColor => return,
            ColorMode::Ansi256 => to_256,
            ColorMode::None => |_| Color::Reset,
        };
        for cell in buf.content.iter_mut() {
            cell.fg = convert(cell.fg);
            cell.bg = convert(cell.bg);
        }
    }
}

/// The nearest colour of the 256-colour palette: its 6x6x6 cube or its grey ramp.
pub fn to_256(c: Color) -> Color {
    let Color::Rgb(r, g, b) = c else { return c };
    let level = |v: u8| -> u8 { if v < 48 { 0 } else if v < 115 { 1 } else { (v - 35) / 40 } };
    let cube_value = |l: u8| if l == 0 { 0 } else { 55 + 40 * l };
    let (lr, lg, lb) = (level(r), level(g), level(b));
    let cube = (cube_value(lr), cube_value(lg), cube_value(lb));
    let grey_index = ((u16::from(r) + u16::from(g) + u16::from(b)) / 3).saturating_sub(3) / 10;
    let grey_index = grey_index.min(23) as u8;
    let grey = 8 + 10 * grey_index;
    let distance = |(x, y, z): (u8, u8, u8)| {
        let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).pow(2);
        d(x, r) + d(y, g) + d(z, b)
    };
    if distance((grey, grey, grey)) < distance(cube) {
        Color::Indexed(232 + grey_index)
    } else {
        Color::Indexed(16 + 36 * lr + 6 * lg + lb)
    }
}

/// A map pixel's colour as a letter, for a terminal without colour (and for tests): mem_info's
/// letters for its types (`H` other, `U` unknown, and `E I C N O Y` for set, int, closure,
/// bound method, instance, type), lower case when mostly free, `.` free, `@` the cursor, `*`
/// changed, and the diff's `+ - =` (allocated, freed, kept).
pub fn letter(c: Color) -> char {
    let fixed = [(FREE, '.'), (CURSOR, '@'), (CHANGED, '*'), (ALLOCATED, '+'), (FREED, '-'), (KEPT, '=')];
    if let Some((_, ch)) = fixed.iter().find(|(col, _)| *col == c) {
        return *ch;
    }
    for t in ObjType::ALL {
        let letter = match t {
            ObjType::Other => 'H',
            ObjType::Unknown => 'U',
            ObjType::Set => 'E',
            ObjType::Int => 'I',
            ObjType::Closure => 'C',
            ObjType::BoundMethod => 'N',
            ObjType::Instance => 'O',
            ObjType::Type => 'Y',
            t => t.mem_info_letter(),
        };
        if of(t) == c {
            return letter;
        }
        if dim(of(t)) == c {
            return letter.to_ascii_lowercase();
        }
    }
    ' '
}

/// A legend's sample of a map colour: a block of it, or without colour the letter the map
/// draws for it.
pub fn swatch(c: Color, mode: ColorMode) -> ratatui::text::Span<'static> {
    match mode {
        ColorMode::None => ratatui::text::Span::from(letter(c).to_string()),
        _ => ratatui::text::Span::styled("█", ratatui::style::Style::default().fg(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_modes_from_the_environment() {
        assert_eq!(ColorMode::from_env(Some("1"), Some("truecolor")), ColorMode::None);
        assert_eq!(ColorMode::from_env(Some(""), Some("truecolor")), ColorMode::TrueColor, "an empty NO_COLOR is unset");
        assert_eq!(ColorMode::from_env(None, Some("24bit")), ColorMode::TrueColor);
        assert_eq!(ColorMode::from_env(None, None), ColorMode::Ansi256);
    }

    #[test]
    fn the_256_colour_fallback_keeps_colours_apart() {
        assert_eq!(to_256(Color::Rgb(0, 0, 0)), Color::Indexed(16));
        assert_eq!(to_256(Color::Rgb(255, 255, 255)), Color::Indexed(231));
        assert_eq!(to_256(Color::Rgb(128, 128, 128)), Color::Indexed(244));
        assert_eq!(to_256(Color::Cyan), Color::Cyan, "named colours are left alone");
        // Every type keeps a colour of its own, and none looks free.
        let mut seen: Vec<Color> = ObjType::ALL.iter().map(|t| to_256(of(*t))).collect();
        seen.sort_by_key(|c| format!("{c:?}"));
        seen.dedup();
        assert_eq!(seen.len(), ObjType::ALL.len(), "{seen:?}");
        assert!(!seen.contains(&to_256(FREE)));
    }

    #[test]
    fn every_map_colour_has_a_letter() {
        for t in ObjType::ALL {
            assert_ne!(letter(of(t)), ' ', "{t:?}");
            assert_eq!(letter(dim(of(t))), letter(of(t)).to_ascii_lowercase());
        }
        assert_eq!(letter(FREE), '.');
    }
}
