//! Record structs and their per-format code: JSON-lines and CSV encoders, decoders that read
//! only the projected fields, and the checksum hash. All straight-line code per field, no
//! reflection at run time.

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::expr::field_type;
use super::namer::field_ident;
use crate::sema::types::{Schema, Type};
use crate::sema::{Format, Timestamps};

/// `pub struct Name { fields }` with the derives every record needs.
pub fn record_struct(rt: &TokenStream, name: &Ident, schema: &Schema) -> TokenStream {
    let fields = schema.fields.iter().map(|f| {
        let id = field_ident(&f.name);
        let ty = field_type(f.ty, f.nullable);
        quote!(pub #id: #ty)
    });
    let names = schema.fields.iter().map(|f| field_ident(&f.name));
    quote! {
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct #name { #(#fields,)* }
        #rt::state_struct!(#name { #(#names),* });
    }
}

/// `fn name(r: &T, out: &mut Vec<u8>)` writing one line in `format`. JSON member names are
/// escaped at compile time: each field starts with one byte-string literal (`,"name":`).
pub fn encoder(
    rt: &TokenStream,
    name: &Ident,
    record: &TokenStream,
    schema: &Schema,
    format: &Format,
) -> TokenStream {
    let mut body = Vec::new();
    let timestamps = format.timestamps();
    match format {
        Format::Json { .. } => {
            if schema.fields.is_empty() {
                body.push(quote!(out.push(b'{');));
            }
            for (i, f) in schema.fields.iter().enumerate() {
                // `{"name":` or `,"name":`, escaped here once rather than per record.
                let mut prefix = vec![if i == 0 { b'{' } else { b',' }];
                json_key(&mut prefix, &f.name);
                let prefix = proc_macro2::Literal::byte_string(&prefix);
                body.push(quote!(out.extend_from_slice(#prefix);));
                let id = field_ident(&f.name);
                let write = |v: TokenStream| match f.ty {
                    Type::I64 | Type::Duration => quote!(json::write_i64(out, #v)),
                    Type::F64 => quote!(json::write_f64(out, #v)),
                    Type::Bool => quote!(json::write_bool(out, #v)),
                    Type::Timestamp => match timestamps {
                        Timestamps::Iso8601 => quote!(json::write_timestamp_iso(out, #v)),
                        Timestamps::EpochMs => quote!(json::write_i64(out, #v)),
                        Timestamps::Pattern(pattern) => {
                            let pattern = date_pattern(rt, pattern);
                            quote!(json::write_string(out, &#rt::functions::date_format(#v, #pattern)))
                        }
                        _ => quote!(json::write_timestamp(out, #v)),
                    },
                    Type::String | Type::Null => quote!(json::write_string(out, #v)),
                    Type::Record(_) | Type::Array(_) => super::nested::write_value(f.ty, false, v),
                };
                if f.nullable {
                    let w = write(quote!(v));
                    let scrutinee = match f.ty {
                        Type::String => quote!(r.#id.as_deref()),
                        Type::Record(_) | Type::Array(_) => quote!(r.#id.as_ref()),
                        _ => quote!(r.#id),
                    };
                    body.push(
                        quote!(match #scrutinee { Some(v) => #w, None => json::write_null(out) };),
                    );
                } else {
                    let v = match f.ty {
                        Type::String => quote!(&r.#id),
                        Type::Record(_) | Type::Array(_) => quote!((&r.#id)),
                        _ => quote!(r.#id),
                    };
                    let w = write(v);
                    body.push(quote!(#w;));
                }
            }
            body.push(quote!(out.extend_from_slice(b"}\n");));
        }
        Format::Csv { delimiter, .. } => {
            // Numbers and timestamps contain '-', '.', ':' and ' '; with such a delimiter they
            // must go through the quoting writer.
            let plain = matches!(delimiter, b',' | b';' | b'\t' | b'|');
            for (i, f) in schema.fields.iter().enumerate() {
                if i > 0 {
                    body.push(quote!(out.push(#delimiter);));
                }
                let id = field_ident(&f.name);
                let write = |v: TokenStream| match (f.ty, plain) {
                    // (sema refuses nested fields in CSV; as JSON text if one came here)
                    (Type::Record(_) | Type::Array(_), _) => {
                        let text = super::nested::json_text(rt, f.ty, v);
                        quote!(csv::write_cell(out, &#text, #delimiter))
                    }
                    (Type::String | Type::Null, _) => quote!(csv::write_cell(out, #v, #delimiter)),
                    (Type::I64 | Type::Duration, true) => quote!(csv::write_i64(out, #v)),
                    (Type::F64, true) => quote!(csv::write_f64(out, #v)),
                    (Type::Bool, true) => quote!(csv::write_bool(out, #v)),
                    (Type::Timestamp, _) if let Timestamps::Pattern(pattern) = timestamps => {
                        let pattern = date_pattern(rt, pattern);
                        quote!(csv::write_cell(out, &#rt::functions::date_format(#v, #pattern), #delimiter))
                    }
                    (Type::Timestamp, _) if *timestamps == Timestamps::EpochMs => {
                        quote!(csv::write_i64(out, #v))
                    }
                    (Type::Timestamp, true) if *timestamps == Timestamps::Iso8601 => {
                        quote!(csv::write_timestamp_iso(out, #v))
                    }
                    (Type::Timestamp, true) => quote!(csv::write_timestamp(out, #v)),
                    (Type::F64, false) => {
                        quote!(csv::write_cell(out, &csv::f64_text(#v), #delimiter))
                    }
                    (Type::Timestamp, false) => {
                        let iso = *timestamps == Timestamps::Iso8601;
                        quote!(csv::write_timestamp_cell(out, #v, #iso, #delimiter))
                    }
                    (_, false) => quote!(csv::write_cell(out, &(#v).to_string(), #delimiter)),
                };
                if f.nullable {
                    let scrutinee = match f.ty {
                        Type::String => quote!(r.#id.as_deref()),
                        Type::Record(_) | Type::Array(_) => quote!(r.#id.as_ref()),
                        _ => quote!(r.#id),
                    };
                    let w = write(quote!(v));
                    body.push(quote!(if let Some(v) = #scrutinee { #w; }));
                } else {
                    let v = match f.ty {
                        Type::String => quote!(&r.#id),
                        Type::Record(_) | Type::Array(_) => quote!((&r.#id)),
                        _ => quote!(r.#id),
                    };
                    let w = write(v);
                    body.push(quote!(#w;));
                }
            }
            body.push(quote!(out.push(b'\n');));
        }
        Format::Avro(_) => unreachable!("an Avro sink builds values with `avro_values`"),
    }
    quote! {
        fn #name(r: &#record, out: &mut ::std::vec::Vec<u8>) {
            use #rt::formats::{csv, json};
            #(#body)*
        }
    }
}

/// Appends `"key":`, escaped as the runtime's `json::write_string` escapes a string.
pub(crate) fn json_key(out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    for &c in key.as_bytes() {
        match c {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', c]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x00..=0x1f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => out.push(c),
        }
    }
    out.extend_from_slice(b"\":");
}

/// The CSV header line for a schema.
pub fn csv_header(schema: &Schema, delimiter: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in schema.fields.iter().enumerate() {
        if i > 0 {
            out.push(delimiter);
        }
        out.extend_from_slice(f.name.as_bytes());
    }
    out.push(b'\n');
    out
}

/// `fn name(r: &T) -> u64`: hashes every field, in order.
pub fn checksum(
    rt: &TokenStream,
    name: &Ident,
    record: &TokenStream,
    schema: &Schema,
) -> TokenStream {
    let writes = schema.fields.iter().map(|f| {
        let id = field_ident(&f.name);
        let write = |v: TokenStream| match f.ty {
            Type::I64 | Type::Timestamp | Type::Duration => quote!(h.write_i64(#v)),
            Type::F64 => quote!(h.write_f64(#v)),
            Type::Bool => quote!(h.write_bool(#v)),
            Type::String | Type::Null => quote!(h.write_str(#v)),
            Type::Record(_) | Type::Array(_) => {
                let text = super::nested::json_text(rt, f.ty, v);
                quote!(h.write_str(&#text))
            }
        };
        if f.nullable {
            let scrutinee = match f.ty {
                Type::String => quote!(r.#id.as_deref()),
                Type::Record(_) | Type::Array(_) => quote!(r.#id.as_ref()),
                _ => quote!(r.#id),
            };
            let w = write(quote!(v));
            quote!(match #scrutinee { Some(v) => #w, None => h.write_null() };)
        } else {
            let v = match f.ty {
                Type::String => quote!(&r.#id),
                Type::Record(_) | Type::Array(_) => quote!((&r.#id)),
                _ => quote!(r.#id),
            };
            let w = write(v);
            quote!(#w;)
        }
    });
    quote! {
        fn #name(r: &#record) -> u64 {
            let mut h = #rt::checksum::RowHasher::new();
            #(#writes)*
            h.finish()
        }
    }
}

/// The event-time field of a source, which its decoder checks against the accepted range.
#[derive(Clone, Copy, Debug)]
pub struct EventTimeCheck<'a> {
    pub field: &'a str,
    /// `[start, end)` in ms; `None`: the runtime's default range.
    pub range: Option<(i64, i64)>,
}

impl EventTimeCheck<'_> {
    /// The range as a `TimeRange` value of the runtime.
    pub fn range_tokens(&self, rt: &TokenStream) -> TokenStream {
        match self.range {
            None => quote!(#rt::formats::time::TimeRange::EVENT_TIME),
            Some((start, end)) => {
                quote!(#rt::formats::time::TimeRange { start: #start, end: #end })
            }
        }
    }
}

/// The runtime's `time::ReadAs` for a source's `timestamps:`; `None` for the default, whose
/// generated code calls the parsers without it.
fn read_as(rt: &TokenStream, timestamps: &Timestamps) -> Option<TokenStream> {
    let unit = |u: &str| {
        let u = quote::format_ident!("{}", u);
        quote!(#rt::formats::time::ReadAs::Epoch(#rt::formats::time::EpochUnit::#u))
    };
    match timestamps {
        Timestamps::Default | Timestamps::Iso8601 => None,
        Timestamps::Text => Some(quote!(#rt::formats::time::ReadAs::Text)),
        Timestamps::EpochS => Some(unit("Seconds")),
        Timestamps::EpochMs => Some(unit("Millis")),
        Timestamps::EpochUs => Some(unit("Micros")),
        Timestamps::EpochNs => Some(unit("Nanos")),
        Timestamps::Pattern(pattern) => {
            let pattern = date_pattern(rt, pattern);
            Some(quote!(#rt::formats::time::ReadAs::Pattern(#pattern)))
        }
    }
}

/// A `&'static DatePattern` for `pattern`: a block holding its own static, parsed at first
/// use (sema checked the pattern with the runtime's rules).
fn date_pattern(rt: &TokenStream, pattern: &str) -> TokenStream {
    quote!({
        static PATTERN: ::std::sync::LazyLock<#rt::functions::DatePattern> =
            ::std::sync::LazyLock::new(|| {
                #rt::functions::DatePattern::parse(#pattern)
                    .expect("weir check validated this date pattern")
            });
        &*PATTERN
    })
}

/// A JSON member `value` read as the event time of field `name` in `range`, as the source's
/// `timestamps:` says.
fn json_event_time(
    rt: &TokenStream,
    timestamps: &Timestamps,
    name: &str,
    range: TokenStream,
) -> TokenStream {
    match read_as(rt, timestamps) {
        None => quote!(value.as_event_time(#name, #range)),
        Some(how) => quote!(value.as_event_time_as(#name, #range, #how)),
    }
}

/// The conversion of a JSON member `value` to a field of type `ty`.
fn json_read(rt: &TokenStream, ty: Type, timestamps: &Timestamps) -> TokenStream {
    match ty {
        Type::I64 | Type::Duration => quote!(value.as_i64()),
        Type::F64 => quote!(value.as_f64()),
        Type::Bool => quote!(value.as_bool()),
        Type::Timestamp => match read_as(rt, timestamps) {
            None => quote!(value.as_timestamp()),
            Some(how) => quote!(value.as_timestamp_as(#how)),
        },
        Type::String | Type::Null => quote!(value.as_string()),
        Type::Record(_) | Type::Array(_) => super::nested::read_plain(rt, ty),
    }
}

/// Whether a field is a string: decoded into the record's own buffer (see
/// `formats::set_string` in the runtime), not converted to a new value.
fn is_string(ty: Type) -> bool {
    matches!(ty, Type::String | Type::Null)
}

/// The fast path of a JSON decoder (see `json::InOrder` in the runtime): the members taken in
/// the declared order without looking keys up, each value converted as the general path
/// converts it. Returns early once every field is written; falls through to the general
/// path (which writes every field again, or gives the verdict) at the first thing it does
/// not expect. Empty when a field name would need escaping in JSON (the key could not be
/// matched byte for byte).
fn json_in_order(
    rt: &TokenStream,
    record: &Ident,
    declared: &Schema,
    projected: &Schema,
    event_time: Option<EventTimeCheck<'_>>,
    timestamps: &Timestamps,
) -> TokenStream {
    if declared
        .fields
        .iter()
        .any(|f| f.name.bytes().any(|c| c == b'"' || c == b'\\' || c < 0x20))
        || projected.names().any(|n| declared.field(n).is_none())
    {
        return TokenStream::new();
    }
    let is_event_time = |f: &str| event_time.is_some_and(|et| et.field == f);
    let slot = |i: usize| quote::format_ident!("slot_{}", i);
    let members = declared.fields.iter().enumerate().map(|(i, f)| {
        let comma = if i == 0 { "" } else { "," };
        let key = proc_macro2::Literal::byte_string(format!("{comma}\"{}\":", f.name).as_bytes());
        let Some((j, f)) = projected.field(&f.name) else {
            return quote!(members.member(#key)?;);
        };
        let id = slot(j);
        let field = field_ident(&f.name);
        let name = &f.name;
        if let Some(et) = event_time.filter(|_| is_event_time(&f.name)) {
            let read = json_event_time(rt, timestamps, name, et.range_tokens(rt));
            return quote! {
                let value = members.member(#key)?;
                if value.is_null() {
                    return None;
                }
                let #id = #read.ok()?;
            };
        }
        if is_string(f.ty) {
            // Straight into the record's buffer: a fall-through writes it again.
            return if f.nullable {
                quote! {
                    let value = members.member(#key)?;
                    if value.is_null() {
                        into.#field = None;
                    } else {
                        value.read_string(#rt::formats::opt_string(&mut into.#field)).ok()?;
                    }
                }
            } else {
                quote! {
                    let value = members.member(#key)?;
                    if value.is_null() {
                        return None;
                    }
                    value.read_string(&mut into.#field).ok()?;
                }
            };
        }
        if matches!(f.ty, Type::I64 | Type::Duration) && !f.nullable {
            return quote!(let #id = members.member_i64(#key)?;);
        }
        let read = json_read(rt, f.ty, timestamps);
        if f.nullable {
            quote! {
                let value = members.member(#key)?;
                let #id = if value.is_null() { None } else { Some(#read.ok()?) };
            }
        } else {
            quote! {
                let value = members.member(#key)?;
                if value.is_null() {
                    return None;
                }
                let #id = #read.ok()?;
            }
        }
    });
    let fields = projected
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| !is_string(f.ty) || is_event_time(&f.name))
        .map(|(j, f)| {
            let id = field_ident(&f.name);
            let local = slot(j);
            quote!(into.#id = #local;)
        });
    quote! {
        #[inline]
        fn in_order(line: &str, into: &mut #record) -> ::std::option::Option<()> {
            let mut members = #rt::formats::json::InOrder::start(line)?;
            #(#members)*
            if !members.end() {
                return None;
            }
            #(#fields)*
            Some(())
        }
        if in_order(line, into).is_some() {
            return Ok(());
        }
    }
}

/// `fn name(line: &str, into: &mut T) -> Result<(), DecodeError>` for a source of `declared`
/// fields, of which the record `projected` keeps some; for CSV with a header,
/// `fn name(header: Option<&str>)` returning such a decoder for the columns the header names
/// (see `lines::MakeDecoder`). JSON skips unread members; CSV converts only read columns.
/// A decoder writes every field of `into` when it succeeds, and its strings into the buffers
/// `into` already holds, so a source that decodes each line into the same record allocates
/// nothing per line (`formats::owned` makes a new record per line instead).
/// Timestamps must lie in the years 0000 to 9999, and the event-time field, if any, in its
/// range (one comparison more per record): other values are errors, so dead letters.
pub fn decoder(
    rt: &TokenStream,
    name: &Ident,
    record: &Ident,
    declared: &Schema,
    projected: &Schema,
    format: &Format,
    event_time: Option<EventTimeCheck<'_>>,
) -> TokenStream {
    let event_time = event_time.filter(|et| projected.field(et.field).is_some());
    let is_event_time = |field: &str| event_time.is_some_and(|et| et.field == field);
    let parse_text = |ty: Type, v: TokenStream| match ty {
        Type::I64 | Type::Duration => quote!(#rt::formats::parse_i64(#v)),
        Type::F64 => quote!(#rt::formats::parse_f64(#v)),
        Type::Bool => quote!(#rt::formats::parse_bool(#v)),
        Type::Timestamp => match read_as(rt, format.timestamps()) {
            None => quote!(#rt::formats::parse_timestamp(#v)),
            Some(how) => quote!(#rt::formats::parse_timestamp_as(#v, #how)),
        },
        // (Not used: a string is read into its field's buffer, see `is_string`.)
        Type::String | Type::Null => {
            quote!(Ok::<_, #rt::formats::DecodeError>(::std::string::String::from(#v)))
        }
        // (sema refuses nested fields in CSV)
        Type::Record(_) | Type::Array(_) => {
            quote!(Err(#rt::formats::DecodeError::new(
                "a nested field cannot be read from CSV"
            )))
        }
    };
    match format {
        Format::Avro(avro) => avro_decoder(rt, name, record, projected, avro, event_time),
        Format::Json { .. } => {
            // Locals are `slot_N`/`seen_N`, never field names, so no field can shadow
            // `member`/`value`. A string is read into the record at once (`seen_N` says it
            // was); other values wait in `slot_N` until every member was read.
            let slot = |i: usize| quote::format_ident!("slot_{}", i);
            let seen = |i: usize| quote::format_ident!("seen_{}", i);
            let in_record =
                |f: &crate::sema::types::Field| is_string(f.ty) && !is_event_time(&f.name);
            let slots = projected.fields.iter().enumerate().map(|(i, f)| {
                if in_record(f) {
                    let id = seen(i);
                    quote!(let mut #id = false;)
                } else {
                    let id = slot(i);
                    let ty = field_type(f.ty, f.nullable);
                    quote!(let mut #id: ::std::option::Option<#ty> = None;)
                }
            });
            let arms = projected.fields.iter().enumerate().map(|(i, f)| {
                let id = slot(i);
                let key = &f.name;
                let field = field_ident(&f.name);
                let msg = "null in a field that is not optional";
                if let Some(et) = event_time.filter(|_| is_event_time(&f.name)) {
                    // Never null (sema); every error of `as_event_time` names the field.
                    let read = json_event_time(rt, format.timestamps(), key, et.range_tokens(rt));
                    return quote!(#key => {
                        if value.is_null() {
                            return Err(DecodeError::new(#msg).in_field(#key));
                        }
                        #id = Some(#read?);
                    });
                }
                if in_record(f) {
                    let seen = seen(i);
                    return if f.nullable {
                        quote!(#key => {
                            if value.is_null() {
                                into.#field = None;
                            } else {
                                value.read_string(#rt::formats::opt_string(&mut into.#field)).map_err(|e| e.in_field(#key))?;
                            }
                            #seen = true;
                        })
                    } else {
                        quote!(#key => {
                            if value.is_null() {
                                return Err(DecodeError::new(#msg).in_field(#key));
                            }
                            value.read_string(&mut into.#field).map_err(|e| e.in_field(#key))?;
                            #seen = true;
                        })
                    };
                }
                let read = json_read(rt, f.ty, format.timestamps());
                if f.nullable {
                    quote!(#key => {
                        #id = Some(if value.is_null() { None } else { Some(#read.map_err(|e| e.in_field(#key))?) });
                    })
                } else {
                    quote!(#key => {
                        if value.is_null() {
                            return Err(DecodeError::new(#msg).in_field(#key));
                        }
                        #id = Some(#read.map_err(|e| e.in_field(#key))?);
                    })
                }
            });
            // In field order, so the first missing field is the one named.
            let finish = projected.fields.iter().enumerate().map(|(i, f)| {
                let id = field_ident(&f.name);
                let msg = format!("missing field `{}`", f.name);
                if in_record(f) {
                    let seen = seen(i);
                    return if f.nullable {
                        quote!(if !#seen { into.#id = None; })
                    } else {
                        quote!(if !#seen { return Err(DecodeError::new(#msg)); })
                    };
                }
                let local = slot(i);
                if f.nullable {
                    quote!(into.#id = #local.unwrap_or(None);)
                } else {
                    quote!(into.#id = match #local { Some(v) => v, None => return Err(DecodeError::new(#msg)) };)
                }
            });
            let in_order = json_in_order(
                rt,
                record,
                declared,
                projected,
                event_time,
                format.timestamps(),
            );
            quote! {
                fn #name(line: &str, into: &mut #record) -> ::std::result::Result<(), #rt::formats::DecodeError> {
                    use #rt::formats::DecodeError;
                    #in_order
                    #(#slots)*
                    #rt::formats::json::for_each_field(line, |member, value| {
                        match member {
                            #(#arms)*
                            _ => {}
                        }
                        Ok(())
                    })?;
                    #(#finish)*
                    Ok(())
                }
            }
        }
        Format::Csv {
            delimiter,
            header: true,
            ..
        } => {
            // Columns found by the header's names when the input starts (`HeaderMap`): read
            // field `i` is `cells[map.slots[i]]`.
            let k = projected.fields.len();
            let names = declared.fields.iter().map(|f| &f.name);
            let read = projected
                .fields
                .iter()
                .map(|f| declared.field(&f.name).map(|(i, _)| i).unwrap_or(0));
            let fields = projected.fields.iter().enumerate().map(|(i, f)| {
                csv_field(
                    rt,
                    f,
                    quote!(cells[map.slots[#i]]),
                    &is_event_time,
                    event_time,
                    &parse_text,
                    format.timestamps(),
                )
            });
            quote! {
                fn #name(header: ::std::option::Option<&str>) -> ::std::result::Result<
                    impl FnMut(&str, &mut #record) -> ::std::result::Result<(), #rt::formats::DecodeError>,
                    ::std::string::String,
                > {
                    use #rt::formats::DecodeError;
                    let map = #rt::formats::csv::HeaderMap::<#k>::new(
                        header.unwrap_or_default(), #delimiter, &[#(#names),*], [#(#read),*],
                    )?;
                    Ok(move |line: &str, into: &mut #record| -> ::std::result::Result<(), DecodeError> {
                        let mut cells = [#rt::formats::csv::Cell::EMPTY; #k];
                        #rt::formats::csv::split_columns(line, #delimiter, &map.columns, map.n_columns, &mut cells)?;
                        #(#fields)*
                        Ok(())
                    })
                }
            }
        }
        Format::Csv { delimiter, .. } => {
            let n = declared.fields.len();
            // The columns read, ascending; field `f` reads `cells[slot(f)]`.
            let column_of = |f: &str| declared.field(f).map(|(i, _)| i).unwrap_or(0);
            let mut columns: Vec<usize> = projected
                .fields
                .iter()
                .map(|f| column_of(&f.name))
                .collect();
            columns.sort_unstable();
            columns.dedup();
            let k = columns.len();
            let slot = |f: &str| columns.binary_search(&column_of(f)).unwrap_or(0);
            let fields = projected.fields.iter().map(|f| {
                let index = slot(&f.name);
                csv_field(
                    rt,
                    f,
                    quote!(cells[#index]),
                    &is_event_time,
                    event_time,
                    &parse_text,
                    format.timestamps(),
                )
            });
            quote! {
                fn #name(line: &str, into: &mut #record) -> ::std::result::Result<(), #rt::formats::DecodeError> {
                    use #rt::formats::DecodeError;
                    let mut cells = [#rt::formats::csv::Cell::EMPTY; #k];
                    #rt::formats::csv::split_columns(line, #delimiter, &[#(#columns),*], #n, &mut cells)?;
                    #(#fields)*
                    Ok(())
                }
            }
        }
    }
}

/// `fn name(value: &mut Value, into: &mut T)`: the fields of a decoded Avro record (in the
/// schema's order, each at the position the compiler read) moved into `into`; strings by
/// swapping buffers, so nothing is copied.
fn avro_decoder(
    rt: &TokenStream,
    name: &Ident,
    record: &Ident,
    projected: &Schema,
    avro: &crate::sema::AvroFormat,
    event_time: Option<EventTimeCheck<'_>>,
) -> TokenStream {
    let n = avro.fields.len();
    let reads = projected.fields.iter().map(|f| {
        let index = avro
            .fields
            .iter()
            .position(|a| a.name == f.name)
            .expect("sema checked the field is in the Avro schema");
        let id = field_ident(&f.name);
        let key = &f.name;
        let read = |v: TokenStream| match f.ty {
            Type::I64 | Type::Duration => quote!(avro::read_i64(#v)),
            Type::F64 => quote!(avro::read_f64(#v)),
            Type::Bool => quote!(avro::read_bool(#v)),
            Type::Timestamp => quote!(avro::read_timestamp(#v)),
            Type::String | Type::Null => unreachable!("strings are read into their buffer"),
            // (sema refuses nested fields in Avro)
            Type::Record(_) | Type::Array(_) => {
                quote!(Err::<(), _>(#rt::formats::DecodeError::new("a nested field cannot be read from Avro")))
            }
        };
        let value = quote!(&mut fields[#index].1);
        if let Some(et) = event_time.filter(|et| et.field == f.name) {
            let range = et.range_tokens(rt);
            let read = read(quote!(v));
            return quote! {{
                let v = avro::required(#value).map_err(|e| e.in_field(#key))?;
                let ts = #read.map_err(|e| e.in_field(#key))?;
                into.#id = #rt::formats::time::check_event_time(ts, #key, #range)?;
            }};
        }
        match (is_string(f.ty), f.nullable) {
            (true, false) => quote! {{
                let v = avro::required(#value).map_err(|e| e.in_field(#key))?;
                avro::read_string(v, &mut into.#id).map_err(|e| e.in_field(#key))?;
            }},
            (true, true) => quote! {
                match avro::non_null(#value) {
                    None => into.#id = None,
                    Some(v) => avro::read_string(v, #rt::formats::opt_string(&mut into.#id))
                        .map_err(|e| e.in_field(#key))?,
                }
            },
            (false, false) => {
                let read = read(quote!(v));
                quote! {{
                    let v = avro::required(#value).map_err(|e| e.in_field(#key))?;
                    into.#id = #read.map_err(|e| e.in_field(#key))?;
                }}
            }
            (false, true) => {
                let read = read(quote!(v));
                quote! {
                    into.#id = match avro::non_null(#value) {
                        None => None,
                        Some(v) => Some(#read.map_err(|e| e.in_field(#key))?),
                    };
                }
            }
        }
    });
    quote! {
        fn #name(value: &mut #rt::formats::avro::Value, into: &mut #record) -> ::std::result::Result<(), #rt::formats::DecodeError> {
            use #rt::formats::avro;
            let fields = avro::fields(value, #n)?;
            #(#reads)*
            Ok(())
        }
    }
}

/// `fn name(r: &T) -> Value`: the Avro record of a row, every field of the schema in its
/// order (one the stream lacks is a null: sema allows that only in a union with null).
pub fn avro_values(
    rt: &TokenStream,
    name: &Ident,
    record: &TokenStream,
    schema: &Schema,
    avro: &crate::sema::AvroFormat,
) -> TokenStream {
    use crate::sema::AvroKind as K;
    let fields = avro.fields.iter().map(|a| {
        let key = &a.name;
        let null = match a.union {
            Some((null, _)) => quote!(avro::union(#null, avro::Value::Null)),
            None => quote!(avro::Value::Null),
        };
        let Some((_, f)) = schema.field(&a.name) else {
            return quote!((::std::string::String::from(#key), #null));
        };
        let id = field_ident(&f.name);
        let make = |v: TokenStream| {
            let plain = match a.kind {
                K::Long | K::Int => quote!(avro::Value::Long(#v)),
                K::Double | K::Float => quote!(avro::Value::Double(#v)),
                K::Boolean => quote!(avro::Value::Boolean(#v)),
                K::TimestampMillis => quote!(avro::Value::TimestampMillis(#v)),
                K::TimestampMicros => {
                    quote!(avro::Value::TimestampMicros((#v).saturating_mul(1000)))
                }
                _ => quote!(avro::Value::String(::std::string::String::from(#v))),
            };
            match a.union {
                Some((_, branch)) => quote!(avro::union(#branch, #plain)),
                None => plain,
            }
        };
        let value = match (f.nullable, is_string(f.ty)) {
            (false, true) => make(quote!(r.#id.as_str())),
            (false, false) => make(quote!(r.#id)),
            (true, true) => {
                let some = make(quote!(v));
                quote!(match r.#id.as_deref() { Some(v) => #some, None => #null })
            }
            (true, false) => {
                let some = make(quote!(v));
                quote!(match r.#id { Some(v) => #some, None => #null })
            }
        };
        quote!((::std::string::String::from(#key), #value))
    });
    quote! {
        fn #name(r: &#record) -> #rt::formats::avro::Value {
            use #rt::formats::avro;
            avro::Value::Record(::std::vec![#(#fields),*])
        }
    }
}

/// The statement of a CSV decoder writing field `f` of `into` from the cell `cell` (an
/// expression of type `Cell`).
fn csv_field(
    rt: &TokenStream,
    f: &crate::sema::types::Field,
    cell: TokenStream,
    is_event_time: &dyn Fn(&str) -> bool,
    event_time: Option<EventTimeCheck<'_>>,
    parse_text: &dyn Fn(Type, TokenStream) -> TokenStream,
    timestamps: &Timestamps,
) -> TokenStream {
    let id = field_ident(&f.name);
    let key = &f.name;
    if let Some(et) = event_time.filter(|_| is_event_time(&f.name)) {
        // Never null (sema); every error of `parse_event_time` names the field.
        let range = et.range_tokens(rt);
        return match read_as(rt, timestamps) {
            None => {
                quote!(into.#id = #rt::formats::parse_event_time(&#cell.text(), #key, #range)?;)
            }
            Some(how) => {
                quote!(into.#id = #rt::formats::parse_event_time_as(&#cell.text(), #key, #range, #how)?;)
            }
        };
    }
    if is_string(f.ty) {
        // The cell's text into the field's buffer; a quoted empty cell is the empty string.
        return if f.nullable {
            quote! {
                if #cell.is_null() {
                    into.#id = None;
                } else {
                    #rt::formats::set_string(#rt::formats::opt_string(&mut into.#id), &#cell.text());
                }
            }
        } else {
            quote!(#rt::formats::set_string(&mut into.#id, &#cell.text());)
        };
    }
    let parse = parse_text(f.ty, quote!(&#cell.text()));
    if f.nullable {
        // For types other than strings, either empty cell is null.
        quote!(into.#id = if #cell.is_empty() { None } else { Some(#parse.map_err(|e| e.in_field(#key))?) };)
    } else {
        quote!(into.#id = #parse.map_err(|e| e.in_field(#key))?;)
    }
}

#[cfg(test)]
mod tests {
    use super::json_key;

    fn key(name: &str) -> String {
        let mut out = Vec::new();
        json_key(&mut out, name);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_keys_are_escaped_as_the_runtime_escapes_strings() {
        assert_eq!(key("auction"), r#""auction":"#);
        assert_eq!(key("é"), "\"é\":");
        assert_eq!(key("a\"b\\c"), r#""a\"b\\c":"#);
        assert_eq!(
            key("\n\r\t\u{8}\u{c}\u{1}\u{1f}"),
            r#""\n\r\t\b\f\u0001\u001f":"#
        );
    }
}
