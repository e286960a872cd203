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
        ObjType::Module => Color::Rgb(255, 255, 255),
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
