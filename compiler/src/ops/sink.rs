//! `sink`: the end of a pipeline. stdout and file sinks encode rows (JSON lines or CSV) with a
//! generated encoder and write them through one buffered writer; the checksum sink hashes every
//! field of every row and reports a count and an order-independent checksum; a Kafka sink
//! produces each row as one message (one producer per upstream instance).

use quote::{format_ident, quote};

use super::{Emitted, OperatorSpec, Role};
use crate::codegen::context::EmitCx;
use crate::codegen::records;
use crate::ir::OpId;
use crate::sema::types::Type;
use crate::sema::{Format, SinkDef, SinkKind};

pub const SPEC: OperatorSpec = OperatorSpec {
    name: "sink",
    n_inputs: 1,
    has_output: false,
    stateful: false,
    checkpointed: true,
    doc: "writes rows to stdout, a file, a checksum, or a Kafka topic",
};

pub fn emit(cx: &mut EmitCx<'_>, op: OpId, def: &SinkDef) -> Emitted {
    let rt = cx.rt.clone();
    if cx.form.is_memory() {
        return super::memory::memory_sink(cx, op, def);
    }
    let input = cx.input_row_type(op);
    let schema = cx.input_stream_type(op).schema;
    let updating = cx.input_updating(op);
    let metrics = cx.metrics_handle(op);
    let label = def.label.clone();
    let mut items = Vec::new();
    // For an updating stream: the key of its rows (the final table keeps one row per key).
    let key_fn = updating
        .as_ref()
        .filter(|_| !matches!(def.kind, SinkKind::Kafka { .. } | SinkKind::Postgres { .. }))
        .map(|up| {
            let name = cx.namer.fresh(&format!("{}_key", cx.names.prefix(op)));
            let fields: Vec<_> = up
                .key
                .iter()
                .map(|k| {
                    let id = crate::codegen::namer::field_ident(k);
                    quote!(::std::clone::Clone::clone(&r.#id))
                })
                .collect();
            let types: Vec<_> = up
                .key
                .iter()
                .map(|k| {
                    let f = schema
                        .field(k)
                        .map(|(_, f)| f.clone())
                        .expect("sema checked the key");
                    crate::codegen::expr::field_type(f.ty, f.nullable)
                })
                .collect();
            items.push(quote! {
                fn #name(r: &#input) -> (#(#types,)*) { (#(#fields,)*) }
            });
            name
        });
    match &def.kind {
        SinkKind::Checksum => {
            let hash = cx.namer.fresh(&format!("{}_checksum", cx.names.prefix(op)));
            items.push(records::checksum(&rt, &hash, &input, &schema));
            let registry = format_ident!("metrics");
            let leaf = match &key_fn {
                Some(key) => quote!(#rt::sinks::changelog::Materialize::new(
                    #metrics.clone(),
                    #key,
                    #rt::sinks::changelog::checksum_table(#registry.clone(), #label, #hash),
                )),
                None => {
                    quote!(#rt::sinks::Checksum::new(#metrics.clone(), #registry.clone(), #label, #hash))
                }
            };
            Emitted {
                items,
                setup: Vec::new(),
                captures: vec![metrics.clone(), registry.clone()],
                moves: Vec::new(),
                role: Role::Leaf(leaf),
            }
        }
        SinkKind::File {
            path,
            format: Format::Avro(avro),
            ..
        } => {
            // One object container file (sema refuses parts and partitions), written by the
            // one instance the output is moved into.
            let values = cx
                .namer
                .fresh(&format!("{}_avro_values", cx.names.prefix(op)));
            items.push(records::avro_values(&rt, &values, &input, &schema, avro));
            let output = format_ident!("output_{}", op.index());
            let writer = format_ident!("avro_{}", op.index());
            let json = &avro.schema;
            let codec = avro.codec.as_deref().unwrap_or("null");
            let setup = vec![quote! {
                let mut #output = Some(#rt::sinks::open_output(Some(::std::path::Path::new(#path)))
                    .map_err(|e| format!("sink `{}`: {}", #label, e))?);
                let #writer = #rt::formats::avro::Avro::new(#label, #json, ::std::option::Option::None)?;
            }];
            Emitted {
                items,
                setup,
                captures: vec![metrics.clone(), writer.clone()],
                moves: vec![output.clone()],
                role: Role::Leaf(quote!(#rt::sinks::avro::AvroFileSink::new(
                    #metrics.clone(), #output, #writer.clone(), #codec, #values
                )?)),
            }
        }
        SinkKind::File {
            path,
            format,
            partition_by,
            ..
        } if !partition_by.is_empty() => {
            // Partition fields name folders; the rows hold the other fields.
            let row_schema = crate::sema::Schema {
                fields: schema
                    .fields
                    .iter()
                    .filter(|f| !partition_by.contains(&f.name))
                    .cloned()
                    .collect(),
            };
            let encode = cx.namer.fresh(&format!("{}_encode", cx.names.prefix(op)));
            items.push(records::encoder(&rt, &encode, &input, &row_schema, format));
            let partition = partition_fn(cx, op, &input, &schema, partition_by, &mut items);
            let header = match format {
                Format::Csv {
                    header: true,
                    delimiter,
                    ..
                } => records::csv_header(&row_schema, *delimiter),
                _ => Vec::new(),
            };
            let header = proc_macro2::Literal::byte_string(&header);
            let file_name = match format {
                Format::Json { .. } => "part-0.jsonl",
                Format::Csv { .. } => "part-0.csv",
                Format::Avro(_) => unreachable!("sema refuses a partitioned Avro file"),
            };
            Emitted {
                items,
                setup: Vec::new(),
                captures: vec![metrics.clone()],
                moves: Vec::new(),
                role: Role::Leaf(quote!(#rt::sinks::partitioned::PartitionedWriter::new(
                    #metrics.clone(), ::std::path::PathBuf::from(#path), #file_name, #header, #partition, #encode
                ))),
            }
        }
        SinkKind::Parquet {
            path,
            partition_by,
            roll_size,
            roll_interval,
        } => {
            // Partition fields name folders; the files hold the other fields as columns.
            let partition = partition_fn(cx, op, &input, &schema, partition_by, &mut items);
            let roll_interval = match roll_interval {
                Some(ms) => quote!(::std::option::Option::Some(#ms)),
                None => quote!(::std::option::Option::None),
            };
            let columns = cx.namer.fresh(&format!("{}Columns", cx.names.camel(op)));
            let pq = quote!(#rt::sinks::parquet);
            let fields: Vec<_> = schema
                .fields
                .iter()
                .filter(|f| !partition_by.contains(&f.name))
                .collect();
            let col = |i: usize| format_ident!("c{}", i);
            let (mut decls, mut inits, mut arrow_fields, mut pushes, mut arrays) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (i, f) in fields.iter().enumerate() {
                let c = col(i);
                let id = crate::codegen::namer::field_ident(&f.name);
                let name = &f.name;
                let nullable = f.nullable;
                let (builder, init, data_type) = match f.ty {
                    Type::I64 | Type::Duration => (
                        quote!(#pq::arrow_array::builder::Int64Builder),
                        quote!(#pq::arrow_array::builder::Int64Builder::new()),
                        quote!(#pq::arrow_schema::DataType::Int64),
                    ),
                    Type::F64 => (
                        quote!(#pq::arrow_array::builder::Float64Builder),
                        quote!(#pq::arrow_array::builder::Float64Builder::new()),
                        quote!(#pq::arrow_schema::DataType::Float64),
                    ),
                    Type::Bool => (
                        quote!(#pq::arrow_array::builder::BooleanBuilder),
                        quote!(#pq::arrow_array::builder::BooleanBuilder::new()),
                        quote!(#pq::arrow_schema::DataType::Boolean),
                    ),
                    Type::Timestamp => (
                        quote!(#pq::arrow_array::builder::TimestampMillisecondBuilder),
                        quote!(#pq::timestamp_builder()),
                        quote!(#pq::timestamp_type()),
                    ),
                    Type::String | Type::Null => (
                        quote!(#pq::arrow_array::builder::StringBuilder),
                        quote!(#pq::arrow_array::builder::StringBuilder::new()),
                        quote!(#pq::arrow_schema::DataType::Utf8),
                    ),
                    Type::Record(_) | Type::Array(_) => {
                        unreachable!("sema refuses nested fields in a Parquet sink")
                    }
                };
                let push = match (f.ty, nullable) {
                    (Type::String | Type::Null, true) => {
                        quote!(self.#c.append_option(r.#id.as_deref());)
                    }
                    (Type::String | Type::Null, false) => quote!(self.#c.append_value(&r.#id);),
                    (_, true) => quote!(self.#c.append_option(r.#id);),
                    (_, false) => quote!(self.#c.append_value(r.#id);),
                };
                decls.push(quote!(#c: #builder));
                inits.push(quote!(#c: #init));
                arrow_fields.push(quote!(#pq::field(#name, #data_type, #nullable)));
                pushes.push(push);
                arrays.push(quote!(#pq::array(self.#c.finish())));
            }
            items.push(quote! {
                struct #columns { rows: usize, #(#decls,)* }
                impl #pq::Columns<#input> for #columns {
                    fn new() -> Self {
                        #columns { rows: 0, #(#inits,)* }
                    }
                    fn schema() -> #pq::arrow_schema::SchemaRef {
                        ::std::sync::Arc::new(#pq::arrow_schema::Schema::new(::std::vec![#(#arrow_fields),*]))
                    }
                    #[inline]
                    fn push(&mut self, r: &#input) {
                        self.rows += 1;
                        #(#pushes)*
                    }
                    fn rows(&self) -> usize {
                        self.rows
                    }
                    fn finish(&mut self) -> ::std::vec::Vec<#pq::arrow_array::ArrayRef> {
                        self.rows = 0;
                        ::std::vec![#(#arrays),*]
                    }
                }
            });
            // The folder is readied once (files of instances a run no longer has are removed);
            // each instance clears and writes its own (`instance` is the spawn loop's).
            let count = crate::codegen::context::parallelism(cx.graph.node(op).parallelism);
            let setup = vec![quote! {
                #pq::prepare(::std::path::Path::new(#path), #count)
                    .map_err(|e| format!("sink `{}`: {}", #label, e))?;
            }];
            Emitted {
                items,
                setup,
                captures: vec![metrics.clone()],
                moves: Vec::new(),
                role: Role::Leaf(quote!(#pq::ParquetSink::<#input, #columns, _>::new(
                    #metrics.clone(), ::std::path::PathBuf::from(#path), instance, #roll_size, #roll_interval, #partition
                ))),
            }
        }
        SinkKind::Kafka {
            topic,
            brokers,
            key,
            properties,
            format,
            exactly_once,
        } => {
            let exactly_once = *exactly_once;
            let encode = cx.namer.fresh(&format!("{}_encode", cx.names.prefix(op)));
            let avro_setup = match format {
                // Avro: the row's value written by the schema parsed at start, a failure
                // (none is expected: sema checked the types) reported as the run's error.
                Format::Avro(avro) => {
                    let values = cx
                        .namer
                        .fresh(&format!("{}_avro_values", cx.names.prefix(op)));
                    items.push(records::avro_values(&rt, &values, &input, &schema, avro));
                    let (json, id) = (&avro.schema, confluent_id(avro.confluent_id));
                    let writer = format_ident!("avro_{}", op.index());
                    let errors = format_ident!("errors_{}", op.index());
                    Some(quote! {
                        let #writer = #rt::formats::avro::Avro::new(#label, #json, #id)?;
                        let #encode = {
                            let (writer, errors) = (#writer.clone(), #errors.clone());
                            move |r: &#input, out: &mut ::std::vec::Vec<u8>| {
                                if let Err(e) = writer.write(#values(r), out) {
                                    errors.report(format!("sink `{}`: {}", #label, e));
                                }
                            }
                        };
                    })
                }
                _ => {
                    items.push(records::encoder(&rt, &encode, &input, &schema, format));
                    None
                }
            };
            // The key as text: a string as is, numbers and booleans as Rust prints them,
            // timestamps as `yyyy-MM-dd HH:mm:ss.SSS`; a null key sends the message without one.
            let key_expr = match key.as_ref().filter(|_| updating.is_none()) {
                None => {
                    quote!(::std::option::Option::<fn(&#input, &mut ::std::vec::Vec<u8>) -> bool>::None)
                }
                Some(name) => {
                    let f = schema
                        .field(name)
                        .map(|(_, f)| f.clone())
                        .expect("sema checked the key field");
                    let id = crate::codegen::namer::field_ident(name);
                    let key_fn = cx
                        .namer
                        .fresh(&format!("{}_message_key", cx.names.prefix(op)));
                    let write = |v: proc_macro2::TokenStream| match f.ty {
                        crate::sema::Type::String => quote!(out.extend_from_slice(#v.as_bytes())),
                        crate::sema::Type::Timestamp => quote!(out.extend_from_slice(
                            #rt::functions::timestamp_to_string(*#v).as_bytes()
                        )),
                        _ => quote!(out.extend_from_slice(#v.to_string().as_bytes())),
                    };
                    let body = if f.nullable {
                        let w = write(quote!(v));
                        quote!(match &r.#id { Some(v) => { #w; true } None => false })
                    } else {
                        let w = write(quote!((&r.#id)));
                        quote!({ #w; true })
                    };
                    items.push(quote! {
                        fn #key_fn(r: &#input, out: &mut ::std::vec::Vec<u8>) -> bool { #body }
                    });
                    quote!(Some(#key_fn))
                }
            };
            // An updating stream: each message keyed by the upsert key, written in the
            // sink's format (`{"auction":7}` or `7`; JSON when the values are Avro), a
            // delete as a tombstone.
            let key_format = match format {
                Format::Avro(_) => Format::Json {
                    timestamps: crate::sema::Timestamps::Default,
                },
                other => other.clone(),
            };
            let upsert_key = updating.as_ref().map(|up| {
                let key_schema = crate::sema::Schema {
                    fields: up
                        .key
                        .iter()
                        .map(|k| {
                            schema
                                .field(k)
                                .map(|(_, f)| f.clone())
                                .expect("sema checked the key")
                        })
                        .collect(),
                };
                let encode_key = cx
                    .namer
                    .fresh(&format!("{}_encode_key", cx.names.prefix(op)));
                items.push(records::encoder(
                    &rt,
                    &encode_key,
                    &input,
                    &key_schema,
                    &key_format,
                ));
                let key_fn = cx
                    .namer
                    .fresh(&format!("{}_message_key", cx.names.prefix(op)));
                items.push(quote! {
                    fn #key_fn(r: &#input, out: &mut ::std::vec::Vec<u8>) -> bool {
                        #encode_key(r, out);
                        true
                    }
                });
                key_fn
            });
            let config = format_ident!("kafka_sink_{}", op.index());
            let errors = format_ident!("errors_{}", op.index());
            let keys = properties.iter().map(|(k, _)| k);
            let values = properties.iter().map(|(_, v)| v);
            let binary = avro_setup.is_some().then(|| quote!(.binary(true)));
            let mut captures = vec![metrics.clone(), config.clone(), errors.clone()];
            if avro_setup.is_some() {
                captures.push(encode.clone());
            }
            let setup = quote! {
                let #config = #rt::sinks::kafka::KafkaSinkConfig::new(
                    #label, #topic, #brokers, &[#((#keys, #values)),*], &rt.args,
                ).exactly_once(#exactly_once)#binary;
                let #errors = rt.errors();
                #avro_setup
            };
            Emitted {
                items,
                setup: vec![setup],
                captures,
                moves: Vec::new(),
                role: Role::Leaf(match upsert_key {
                    Some(key_fn) => quote!(#rt::sinks::kafka::UpsertKafkaSink::new(
                        #config.clone(), #metrics.clone(), #errors.clone(), #encode, #key_fn
                    )),
                    None => quote!(#rt::sinks::kafka::KafkaSink::new(
                        #config.clone(), #metrics.clone(), #errors.clone(), #encode, #key_expr
                    )),
                }),
            }
        }
        SinkKind::Postgres {
            url,
            table,
            exactly_once,
        } => {
            // Each field a column, in order: the row's values as the runtime's `Value`s.
            let values = cx.namer.fresh(&format!("{}_values", cx.names.prefix(op)));
            let pg = quote!(#rt::sinks::postgres);
            let pushes = schema.fields.iter().map(|f| {
                let id = crate::codegen::namer::field_ident(&f.name);
                let variant = match f.ty {
                    crate::sema::Type::I64 | crate::sema::Type::Duration => quote!(I64),
                    crate::sema::Type::F64 => quote!(F64),
                    crate::sema::Type::Bool => quote!(Bool),
                    crate::sema::Type::Timestamp => quote!(Timestamp),
                    crate::sema::Type::String | crate::sema::Type::Null => quote!(Text),
                    crate::sema::Type::Record(_) | crate::sema::Type::Array(_) => {
                        unreachable!("sema refuses nested fields in a PostgreSQL sink")
                    }
                };
                let value = match (f.ty, f.nullable) {
                    (crate::sema::Type::String | crate::sema::Type::Null, true) => {
                        quote!(r.#id.as_deref())
                    }
                    (crate::sema::Type::String | crate::sema::Type::Null, false) => {
                        quote!(Some(r.#id.as_str()))
                    }
                    (_, true) => quote!(r.#id),
                    (_, false) => quote!(Some(r.#id)),
                };
                quote!(out.push(#pg::Value::#variant(#value));)
            });
            items.push(quote! {
                fn #values<'a>(r: &'a #input, out: &mut ::std::vec::Vec<#pg::Value<'a>>) {
                    #(#pushes)*
                }
            });
            let columns = schema.fields.iter().map(|f| {
                let name = &f.name;
                let ty = match f.ty {
                    crate::sema::Type::I64 | crate::sema::Type::Duration => quote!(I64),
                    crate::sema::Type::F64 => quote!(F64),
                    crate::sema::Type::Bool => quote!(Bool),
                    crate::sema::Type::Timestamp => quote!(Timestamp),
                    crate::sema::Type::String | crate::sema::Type::Null => quote!(Text),
                    crate::sema::Type::Record(_) | crate::sema::Type::Array(_) => {
                        unreachable!("sema refuses nested fields in a PostgreSQL sink")
                    }
                };
                let nullable = f.nullable;
                quote!(#pg::Column { name: #name, ty: #pg::ColumnType::#ty, nullable: #nullable })
            });
            let key = updating
                .as_ref()
                .map(|up| {
                    up.key
                        .iter()
                        .map(|k| {
                            schema
                                .field(k)
                                .map(|(i, _)| i)
                                .expect("sema checked the key")
                        })
                        .collect::<Vec<usize>>()
                })
                .unwrap_or_default();
            let config = format_ident!("postgres_sink_{}", op.index());
            let errors = format_ident!("errors_{}", op.index());
            let setup = quote! {
                let #config = #pg::PostgresSinkConfig {
                    name: #label.to_string(),
                    url: #url.to_string(),
                    table: #table.to_string(),
                    columns: ::std::vec![#(#columns),*],
                    key: ::std::vec![#(#key),*],
                    exactly_once: #exactly_once,
                };
                let #errors = rt.errors();
            };
            let leaf = if updating.is_some() {
                quote!(#pg::PostgresUpsertSink::new(#config.clone(), #metrics.clone(), #errors.clone(), #values))
            } else {
                quote!(#pg::PostgresSink::new(#config.clone(), #metrics.clone(), #errors.clone(), #values))
            };
            Emitted {
                items,
                setup: vec![setup],
                captures: vec![metrics.clone(), config.clone(), errors.clone()],
                moves: Vec::new(),
                role: Role::Leaf(leaf),
            }
        }
        SinkKind::Stdout { format } | SinkKind::File { format, .. } => {
            let encode = cx.namer.fresh(&format!("{}_encode", cx.names.prefix(op)));
            items.push(records::encoder(&rt, &encode, &input, &schema, format));
            let is_stdout = matches!(def.kind, SinkKind::Stdout { .. });
            let mut header = match format {
                Format::Csv {
                    header: true,
                    delimiter,
                    ..
                } => records::csv_header(&schema, *delimiter),
                _ => Vec::new(),
            };
            // A changelog on stdout has an op column first.
            if let (
                Some(_),
                true,
                Format::Csv {
                    header: true,
                    delimiter,
                    ..
                },
            ) = (&key_fn, is_stdout, format)
            {
                header = [b"op".as_slice(), &[*delimiter], &header].concat();
            }
            let header = proc_macro2::Literal::byte_string(&header);
            let output = format_ident!("output_{}", op.index());
            let extension = match format {
                Format::Json { .. } => "jsonl",
                Format::Csv { .. } => "csv",
                Format::Avro(_) => {
                    unreachable!("sema refuses Avro on stdout; an Avro file has its own sink")
                }
            };
            let open = match &def.kind {
                // One part file per instance: the folder is readied once here; each instance
                // opens its own part in its task (`instance` is the spawn loop's).
                SinkKind::File {
                    path, parts: true, ..
                } => {
                    let count = crate::codegen::context::parallelism(cx.graph.node(op).parallelism);
                    quote! {
                        #rt::sinks::prepare_parts(::std::path::Path::new(#path), #extension, #count)
                            .map_err(|e| format!("sink `{}`: {}", #label, e))?;
                    }
                }
                SinkKind::File { path, .. } => quote! {
                    let mut #output = Some(#rt::sinks::open_output(Some(::std::path::Path::new(#path)))
                        .map_err(|e| format!("sink `{}`: {}", #label, e))?);
                },
                _ => quote!(let mut #output = Some(#rt::sinks::Output::Stdout);),
            };
            let parts_path = match &def.kind {
                SinkKind::File {
                    path, parts: true, ..
                } => Some(path),
                _ => None,
            };
            // What the writer writes to: the output opened in `build()`, moved into the one
            // instance; or, with parts, this instance's part, opened as its chain is built.
            let output = match parts_path {
                Some(path) => quote!(#rt::sinks::open_output(Some(
                    &#rt::sinks::part_path(::std::path::Path::new(#path), instance, #extension)
                ))
                .map_err(|e| format!("sink `{}`: {}", #label, e))?),
                None => quote!(#output),
            };
            let style = match format {
                Format::Json { .. } => quote!(#rt::sinks::changelog::OpStyle::Json),
                Format::Csv { delimiter, .. } => {
                    quote!(#rt::sinks::changelog::OpStyle::Csv { delimiter: #delimiter })
                }
                Format::Avro(_) => unreachable!("sema refuses Avro for updating streams"),
            };
            let leaf = match (&key_fn, is_stdout) {
                (None, _) => {
                    quote!(#rt::sinks::Writer::new(#metrics.clone(), #output, #header, #encode))
                }
                (Some(_), true) => quote!(#rt::sinks::changelog::ChangelogWriter::new(
                    #metrics.clone(), #output, #style, #header, #encode
                )),
                (Some(key), false) => quote!(#rt::sinks::changelog::Materialize::new(
                    #metrics.clone(),
                    #key,
                    #rt::sinks::changelog::write_table(#label, #output, #header, #encode),
                )),
            };
            let mut setup = vec![open];
            let mut captures = vec![metrics.clone()];
            // A preview sink: its rows prefixed with its name, at most `--limit` of them.
            let leaf = match &def.preview {
                None => leaf,
                Some(preview) => {
                    let leaf = match &preview.prefix {
                        Some(prefix) => {
                            let prefix = proc_macro2::Literal::byte_string(prefix.as_bytes());
                            quote!(#leaf.with_prefix(#prefix))
                        }
                        None => leaf,
                    };
                    let gate = format_ident!("preview_{}", op.index());
                    setup.push(quote! {
                        let #gate = #rt::sinks::preview::register(rt.args.limit);
                    });
                    captures.push(gate.clone());
                    quote!(#rt::sinks::preview::Limit::new(#gate, #leaf))
                }
            };
            let moves = match parts_path {
                Some(_) => Vec::new(),
                None => vec![format_ident!("output_{}", op.index())],
            };
            Emitted {
                items,
                setup,
                captures,
                moves,
                role: Role::Leaf(leaf),
            }
        }
    }
}

/// `Some(id)` or `None` as tokens.
fn confluent_id(id: Option<u32>) -> proc_macro2::TokenStream {
    match id {
        Some(id) => quote!(::std::option::Option::Some(#id)),
        None => quote!(::std::option::Option::None),
    }
}

/// `fn opN_partition(r: &Row, out: &mut String)` writing a row's Hive partition folder
/// (`a=1/b=x`; a null value is `null`, a value made safe for a folder name): pushed to
/// `items`, its name returned.
fn partition_fn(
    cx: &mut EmitCx<'_>,
    op: OpId,
    input: &proc_macro2::TokenStream,
    schema: &crate::sema::Schema,
    partition_by: &[String],
    items: &mut Vec<proc_macro2::TokenStream>,
) -> proc_macro2::Ident {
    let rt = cx.rt.clone();
    let partition = cx
        .namer
        .fresh(&format!("{}_partition", cx.names.prefix(op)));
    let parts = partition_by.iter().enumerate().map(|(i, name)| {
        let f = schema.field(name).map(|(_, f)| f.clone()).expect("sema checked the field");
        let id = crate::codegen::namer::field_ident(name);
        let prefix = format!("{}{name}=", if i > 0 { "/" } else { "" });
        let text = |v: proc_macro2::TokenStream| match f.ty {
            crate::sema::Type::String => quote!(#v),
            crate::sema::Type::Timestamp => quote!(&#rt::functions::timestamp_to_string(*#v)),
            _ => quote!(&#v.to_string()),
        };
        let value = if f.nullable {
            let t = text(quote!(v));
            quote!(match &r.#id { Some(v) => #rt::sinks::partitioned::push_value(out, #t), None => out.push_str("null") })
        } else {
            let t = text(quote!((&r.#id)));
            quote!(#rt::sinks::partitioned::push_value(out, #t))
        };
        quote! { out.push_str(#prefix); #value; }
    });
    items.push(quote! {
        fn #partition(r: &#input, out: &mut ::std::string::String) { #(#parts)* }
    });
    partition
}
