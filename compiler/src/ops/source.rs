//! `source`: starts a task. The Nexmark generator runs one task per split and generates into a
//! reused record; file sources read lines (one task per byte range of the file), stdin one
//! task, and Kafka sources messages (one consumer per instance, all in one group), and decode
//! them with a generated decoder that reads only the projected fields (malformed records go to
//! the dead-letter output).

use quote::{format_ident, quote};

use super::{Emitted, OperatorSpec, Role};
use crate::codegen::context::EmitCx;
use crate::codegen::records;
use crate::ir::OpId;
use crate::sema::{SourceDef, SourceKind};

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "source",
    n_inputs: 0,
    has_output: true,
    stateful: false,
    checkpointed: true,
    doc: "reads records and assigns event time and watermarks",
};

pub fn emit(
    cx: &mut EmitCx<'_>,
    op: OpId,
    index: usize,
    def: &SourceDef,
    projection: Option<&[String]>,
) -> Emitted {
    let rt = cx.rt.clone();
    if cx.form.is_memory() && !matches!(def.kind, SourceKind::Nexmark { .. }) {
        return super::memory::memory_source(cx, op, def);
    }
    let output = cx.output_type(op);
    let ty = cx.graph.node(op).ty.clone();
    let name = def.name.as_str();
    let metrics = format_ident!("metrics");
    // Sources take part in checkpoints (their position): every source has a state id.
    let state_id = cx.state_ids.get(&op).cloned().unwrap_or_default();
    let event_time = match (def.watermark_ms, ty.time_field) {
        (Some(bound), Some(t)) => {
            let field = crate::codegen::namer::field_ident(&ty.schema.fields[t].name);
            quote!(Some(EventTime { time: |r: &#output| r.#field, max_out_of_orderness_ms: #bound }))
        }
        _ => quote!(None),
    };
    let mut items = Vec::new();
    let mut setup = Vec::new();
    let mut captures = vec![metrics.clone()];
    let role: Role = match &def.kind {
        SourceKind::Postgres { .. } => {
            unreachable!("sema reads a postgres source as a lookup table only, never a stream")
        }
        SourceKind::Nexmark { params, .. } => {
            let cfg = format_ident!("nexmark_config_{}", index);
            let par = cx.splits_var(index);
            let (rate, g, seed, events) = (
                params.rate,
                params.out_of_order_group,
                params.seed,
                params.events,
            );
            setup.push(quote! {
                let #cfg = #rt::nexmark::NexmarkConfig {
                    events: rt.args.events.unwrap_or(#events),
                    rate: #rate,
                    generators: #par as u32,
                    out_of_order_group: #g,
                    seed: #seed,
                    ..::std::default::Default::default()
                };
                #rt::nexmark::check_time_range(#name, &#cfg)?;
            });
            captures.push(cfg.clone());
            let source_name = def.name.clone();
            Role::Source(Box::new(move |chain, instance| {
                quote! {
                    #rt::sources::nexmark::run::<#output, _>(#source_name, &#metrics, &#cfg, #instance, #event_time, #rt::checkpoint::slot(#state_id, #instance), #chain)
                }
            }))
        }
        SourceKind::Parquet { path, .. } => {
            let record = cx
                .names
                .record(op)
                .expect("naming pass: a source names its records");
            cx.set_output_type(op, quote!(#record));
            items.push(records::record_struct(&rt, &record, &ty.schema));
            items.push(parquet_record(&rt, &record, &ty.schema, def, ty.time_field));
            let dead = format_ident!("dead_letters_{}", index);
            match &def.dead_letters {
                Some(path) => setup.push(quote! {
                    let #dead = rt.source_dead_letters(#path);
                }),
                None => setup.push(quote!(let #dead = rt.dead_letters().clone();)),
            }
            captures.push(dead.clone());
            // Opened (and checked against the schema) before any sink opens its output.
            let input = format_ident!("input_{}", index);
            setup.push(quote! {
                let #input = #rt::sources::parquet::open::<#record>(#name, ::std::path::Path::new(#path))?;
            });
            captures.push(input.clone());
            let splits = cx.splits_var(index);
            let event_time = match (def.watermark_ms, ty.time_field) {
                (Some(bound), Some(t)) => {
                    let field = crate::codegen::namer::field_ident(&ty.schema.fields[t].name);
                    quote!(Some(EventTime { time: |r: &#record| r.#field, max_out_of_orderness_ms: #bound }))
                }
                _ => quote!(None),
            };
            Role::Source(Box::new(move |chain, instance| {
                quote! {
                    #rt::sources::parquet::run(&#input, #rt::sources::lines::Split { index: #instance, count: #splits }, &#metrics, &#dead, #event_time, #rt::checkpoint::slot(#state_id, #instance), #chain)
                }
            }))
        }
        SourceKind::File { format, .. }
        | SourceKind::Stdin { format }
        | SourceKind::Kafka(crate::sema::KafkaSource { format, .. }) => {
            let record = cx
                .names
                .record(op)
                .expect("naming pass: a source names its records");
            cx.set_output_type(op, quote!(#record));
            items.push(records::record_struct(&rt, &record, &ty.schema));
            let decode = cx.namer.fresh(&format!("decode_{name}"));
            let _ = projection;
            // The decoder checks the event time against the source's range: a record outside
            // it is a dead letter and never moves the watermark.
            let time_check = match (def.watermark_ms, ty.time_field) {
                (Some(_), Some(t)) => Some(records::EventTimeCheck {
                    field: &ty.schema.fields[t].name,
                    range: def.event_time_range,
                }),
                _ => None,
            };
            items.push(records::decoder(
                &rt,
                &decode,
                &record,
                &def.ty.schema,
                &ty.schema,
                format,
                time_check,
            ));
            let header = matches!(format, crate::sema::Format::Csv { header: true, .. });
            // CSV fields may be quoted, and a quoted field may hold line ends.
            let quotes = match format {
                crate::sema::Format::Csv { delimiter, .. } => quote!(Some(#delimiter)),
                _ => quote!(None),
            };
            // What `lines::run` takes: a decoder made from the header, or the decoder itself.
            let make = if header {
                quote!(#decode)
            } else {
                quote!(#rt::sources::lines::by_position(#decode))
            };
            let dead = format_ident!("dead_letters_{}", index);
            match &def.dead_letters {
                Some(path) => setup.push(quote! {
                    let #dead = rt.source_dead_letters(#path);
                }),
                None => setup.push(quote!(let #dead = rt.dead_letters().clone();)),
            }
            captures.push(dead.clone());
            // An Avro file: one reader of the container file (the source has one split).
            if let (SourceKind::File { path, .. }, crate::sema::Format::Avro(avro)) =
                (&def.kind, format)
            {
                let (file, reader) = (
                    format_ident!("input_{}", index),
                    format_ident!("avro_{}", index),
                );
                let json = &avro.schema;
                setup.push(quote! {
                    let #file = #rt::sources::avro::open_file(#name, ::std::path::Path::new(#path))?;
                    let #reader = #rt::formats::avro::Avro::new(#name, #json, ::std::option::Option::None)?;
                });
                captures.push(file.clone());
                captures.push(reader.clone());
                let name = name.to_string();
                let event_time = match (def.watermark_ms, ty.time_field) {
                    (Some(bound), Some(t)) => {
                        let field = crate::codegen::namer::field_ident(&ty.schema.fields[t].name);
                        quote!(Some(EventTime { time: |r: &#record| r.#field, max_out_of_orderness_ms: #bound }))
                    }
                    _ => quote!(None),
                };
                return Emitted {
                    items,
                    setup,
                    captures,
                    moves: Vec::new(),
                    role: Role::Source(Box::new(move |chain, instance| {
                        quote! {
                            #rt::sources::avro::run(#name, &#file, &#reader, &#metrics, &#dead, #decode, #event_time, #rt::checkpoint::slot(#state_id, #instance), #chain)
                        }
                    })),
                };
            }
            // A file is opened before any sink opens its output (a missing input must not
            // cost the previous output), and shared by the source's instances.
            let input = match &def.kind {
                SourceKind::File { path, .. } => {
                    let file = format_ident!("input_{}", index);
                    setup.push(quote! {
                        let #file = #rt::sources::lines::open_file(#name, ::std::path::Path::new(#path))?;
                    });
                    if header {
                        // A header that does not fit the schema stops the start here.
                        setup.push(quote! {
                            #rt::sources::lines::check_header(#name, &#file, #decode)?;
                        });
                    }
                    captures.push(file.clone());
                    quote!(#file)
                }
                _ => quote!(#rt::sources::lines::Input::Stdin),
            };
            // Instance `i` of a file source reads the `i`-th byte range (stdin: one instance).
            let splits = matches!(def.kind, SourceKind::File { .. }).then(|| cx.splits_var(index));
            let event_time = match (def.watermark_ms, ty.time_field) {
                (Some(bound), Some(t)) => {
                    let field = crate::codegen::namer::field_ident(&ty.schema.fields[t].name);
                    quote!(Some(EventTime { time: |r: &#record| r.#field, max_out_of_orderness_ms: #bound }))
                }
                _ => quote!(None),
            };
            if let SourceKind::Kafka(k) = &def.kind {
                let config = format_ident!("kafka_source_{}", index);
                let (topic, brokers, group) = (&k.topic, &k.brokers, &k.group);
                let start = if k.start_latest {
                    quote!(#rt::sources::kafka::Start::Latest)
                } else {
                    quote!(#rt::sources::kafka::Start::Earliest)
                };
                let keys = k.properties.iter().map(|(key, _)| key);
                let values = k.properties.iter().map(|(_, value)| value);
                setup.push(quote! {
                    let #config = #rt::sources::kafka::KafkaSourceConfig::new(
                        #name, #topic, #brokers, #group, #start, &[#((#keys, #values)),*], &rt.args,
                    );
                    #config.apply_idle_timeout(rt);
                });
                captures.push(config.clone());
                let state_id = state_id.clone();
                // Avro messages: the schema parsed at start, each payload's bytes decoded.
                let avro = match &k.format {
                    crate::sema::Format::Avro(avro) => {
                        let reader = format_ident!("avro_{}", index);
                        let json = &avro.schema;
                        let id = match avro.confluent_id {
                            Some(id) => quote!(::std::option::Option::Some(#id)),
                            None => quote!(::std::option::Option::None),
                        };
                        setup.push(quote! {
                            let #reader = #rt::formats::avro::Avro::new(#name, #json, #id)?;
                        });
                        captures.push(reader.clone());
                        Some(reader)
                    }
                    _ => None,
                };
                // An upsert-Kafka topic: an updating stream, without event time (sema).
                let upsert = !k.upsert_key.is_empty();
                if upsert {
                    // The latest row per key lives with the instance that read it: a partition
                    // moving to another process would leave its deletes without their rows.
                    setup.push(quote! {
                        if rt.args.scale_out {
                            return Err(format!(
                                "source `{}`: an upsert-Kafka source (upsert_key) cannot scale out yet: run one process",
                                #name
                            ).into());
                        }
                    });
                }
                return Emitted {
                    items,
                    setup,
                    captures,
                    moves: Vec::new(),
                    role: Role::Source(Box::new(move |chain, instance| {
                        let slot = quote!(#rt::checkpoint::slot(#state_id, #instance));
                        if let (Some(reader), true) = (&avro, upsert) {
                            quote! {
                                #rt::sources::kafka::run_upsert_payloads(&#config, &#metrics, &#dead, #reader.messages(#decode), #slot, #chain)
                            }
                        } else if let Some(reader) = &avro {
                            quote! {
                                #rt::sources::kafka::run_payloads(&#config, &#metrics, &#dead, #reader.messages(#decode), #event_time, #slot, #chain)
                            }
                        } else if upsert {
                            quote! {
                                #rt::sources::kafka::run_upserts(&#config, &#metrics, &#dead, #rt::formats::owned(#decode), #slot, #chain)
                            }
                        } else {
                            quote! {
                                #rt::sources::kafka::run(&#config, &#metrics, &#dead, #rt::formats::owned(#decode), #event_time, #slot, #chain)
                            }
                        }
                    })),
                };
            }
            let name = name.to_string();
            Role::Source(Box::new(move |chain, instance| {
                let split = match &splits {
                    Some(count) => {
                        quote!(#rt::sources::lines::Split { index: #instance, count: #count })
                    }
                    None => quote!(#rt::sources::lines::Split::WHOLE),
                };
                quote! {
                    #rt::sources::lines::run(#name, #input, #split, #header, #quotes, &#metrics, &#dead, #make, #event_time, #rt::checkpoint::slot(#state_id, #instance), #chain)
                }
            }))
        }
    };
    Emitted {
        items,
        setup,
        captures,
        moves: Vec::new(),
        role,
    }
}

/// `impl ParquetRecord` for a Parquet source's record: the fields it reads (the projected
/// schema's) and how a row becomes the record; the event-time field is checked against the
/// source's range as the line decoders check it.
fn parquet_record(
    rt: &proc_macro2::TokenStream,
    record: &proc_macro2::Ident,
    schema: &crate::sema::types::Schema,
    def: &SourceDef,
    time_field: Option<usize>,
) -> proc_macro2::TokenStream {
    use crate::sema::types::Type;
    let pq = quote!(#rt::sources::parquet);
    let mut fields = Vec::new();
    let mut reads = Vec::new();
    for (i, f) in schema.fields.iter().enumerate() {
        let name = f.name.as_str();
        let id = crate::codegen::namer::field_ident(name);
        let nullable = f.nullable;
        let (kind, getter) = match f.ty {
            Type::I64 | Type::Duration => (quote!(I64), quote!(i64)),
            Type::F64 => (quote!(F64), quote!(f64)),
            Type::Bool => (quote!(Bool), quote!(bool)),
            Type::Timestamp => (quote!(Timestamp), quote!(timestamp)),
            Type::String | Type::Null => (quote!(String), quote!(str)),
            Type::Record(_) | Type::Array(_) => {
                unreachable!("sema refuses nested fields in a Parquet source")
            }
        };
        fields.push(quote!((#name, #pq::Kind::#kind, #nullable)));
        let read = match (f.ty, nullable) {
            (Type::String | Type::Null, false) => quote! {
                #rt::formats::set_string(&mut self.#id, row.str(#i)?.ok_or_else(|| row.null(#i))?);
            },
            (Type::String | Type::Null, true) => quote! {
                match row.str(#i)? {
                    ::std::option::Option::Some(text) => #rt::formats::set_string(#rt::formats::opt_string(&mut self.#id), text),
                    ::std::option::Option::None => self.#id = ::std::option::Option::None,
                }
            },
            (_, true) => quote!(self.#id = row.#getter(#i)?;),
            (_, false) => quote!(self.#id = row.#getter(#i)?.ok_or_else(|| row.null(#i))?;),
        };
        reads.push(read);
        if time_field == Some(i) && def.watermark_ms.is_some() && !nullable {
            let check = crate::codegen::records::EventTimeCheck {
                field: name,
                range: def.event_time_range,
            };
            let range = check.range_tokens(rt);
            reads.push(quote! {
                self.#id = #rt::formats::time::check_event_time(self.#id, #name, #range).map_err(|e| e.to_string())?;
            });
        }
    }
    quote! {
        impl #pq::ParquetRecord for #record {
            const FIELDS: &'static [(&'static str, #pq::Kind, bool)] = &[#(#fields),*];
            fn read(&mut self, row: &#pq::Row<'_>) -> ::std::result::Result<(), ::std::string::String> {
                #(#reads)*
                ::std::result::Result::Ok(())
            }
        }
    }
}
