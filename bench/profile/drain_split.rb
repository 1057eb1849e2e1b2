# frozen_string_literal: true

# Splits a `perf record -e cpu-clock -c PERIOD --call-graph dwarf` profile of
# bench/drain.sh's benchmark (target/release/examples/drain_bench with the
# drain as its child) into µs of CPU per event, per process (the drain, and
# the bench's own BaseProducer baseline) and per part: the produce call,
# the event_id header, the delivery reports, librdkafka's threads, the
# receiving thread, and the rest.
#
# Only samples inside the timed bursts count: for the drain, from its first
# to its last sample in KafkaSink::send per run; for the baseline, in
# produce_baseline_with (runs are seconds apart: the other producer runs in
# between). The processes are the ones with those frames in their samples
# (a child shows the bench's name between fork and exec).
#
#   ruby bench/profile/drain_split.rb PERF_DATA PERIOD_NS EVENTS_PER_RUN RUNS
require "json"

data, period, events, runs = ARGV
period = Integer(period)
events = Integer(events)
runs = Integer(runs)

MAIN_RULES = [
  [/hyphenated|OwnedHeaders|rd_kafka_header|rd_kafka_headers/, "event_id header (build, copy, free)"],
  [/ProducerContext>::delivery|DeliveryResult|BorrowedMessage|rd_kafka_event_|rd_kafka_msg_destroy|take_outcomes|
    rd_kafka_queue_poll|rd_kafka_q_pop|rd_kafka_q_serve|rd_kafka_poll|BaseProducer<.*>::poll|
    KafkaSink.*Sink>::poll/x, "delivery reports (poll, callbacks, message free)"],
  [/rd_kafka_producev|rd_kafka_produceva|rd_kafka_msg_new|rd_kafka_msg_partitioner|rd_kafka_topic_new|
    rd_kafka_toppar|CString|BaseProducer<.*>::send|rd_kafka_msg_sticky|rd_kafka_topic_partition_available|
    rd_kafka_topic_destroy|rd_kafka_produce/x, "produce call (rust-rdkafka + librdkafka)"],
  [/KafkaSink.*Sink>::send/, "produce call (KafkaSink::send itself)"],
  [/Envelope::decode|crc32c|validate_topic|topic::check/, "envelope decode (CRC, topic check)"],
  [/asm_exc_page_fault/, "page faults (journal mapping)"],
  [/nanosleep|futex|crossbeam|sleep/, "waiting and hand-over"],
  [/Drain<.*>::|window::|Window|journal|Journal|settle|admit/, "drain loop bookkeeping (window, journal acks)"],
  [/produce_baseline|xorshift/, "baseline loop (payload generation)"]
].freeze

def main_part(frames)
  frames.each { |sym, _| MAIN_RULES.each { |re, name| return name if sym.match?(re) } }
  "other (main thread)"
end

def rdk_part(frames)
  syms = frames.map(&:first)
  return "librdkafka threads: lz4 compression" if syms.any? { |s| s.match?(/LZ4/i) }
  return "librdkafka threads: header serialisation" if syms.any? { |s| s.match?(/header/i) }
  return "librdkafka threads: kernel (sockets, wake-ups)" if frames.first[1] == "[kernel.kallsyms]"

  "librdkafka threads: other (message sets, idempotence, I/O)"
end

def part(comm, frames)
  case comm
  when /\Ardk:/ then rdk_part(frames)
  when "drain-receive"
    frames.first[1] == "[kernel.kallsyms]" ? "receiving thread: kernel (msgrcv)" : "receiving thread: user"
  when "shopify-events", "drain_bench" then main_part(frames)
  else "other threads (#{comm})"
  end
end

samples = []
header = nil
frames = []
flush = lambda do
  samples << [*header, frames] if header && !frames.empty?
  header = nil
  frames = []
end
IO.popen(["perf", "script", "-F", "comm,pid,tid,time,ip,sym,dso", "--no-inline", "-i", data], err: File::NULL) do |io|
  io.each_line do |line|
    if (m = line.match(%r{\A(\S.*?)\s+(\d+)/(\d+)\s+([\d.]+):}))
      flush.call
      header = [m[1], Integer(m[2]), Integer(m[3]), Float(m[4])]
    elsif (m = line.match(/\A\s+\h+ (.*) \((.*)\)\s*\z/))
      frames << [m[1], m[2]]
    elsif line.strip.empty?
      flush.call
    end
  end
end
flush.call

pids_with = ->(marker) { samples.select { |*, f| f.any? { |sym, _| sym.match?(marker) } }.map { |s| s[1] }.uniq }
# Runs: the marker samples of a process, split at the `runs - 1` widest gaps.
windows = lambda do |pids, marker|
  times = samples.select { |_, pid, _, _, f| pids.include?(pid) && f.any? { |sym, _| sym.match?(marker) } }
                 .map { |s| s[3] }.sort
  cuts = times.each_cons(2).with_index.max_by(runs - 1) { |(a, b), _| b - a }.map(&:last).sort
  bounds = [0, *cuts.map { |i| i + 1 }, times.size]
  bounds.each_cons(2).map { |from, to| (times[from]..times[to - 1]) }
end
markers = { "drain" => /KafkaSink.*Sink>::send/, "baseline" => /produce_baseline/ }
report = markers.to_h do |name, marker|
  pids = pids_with.call(marker)
  spans = windows.call(pids, marker)
  counts = Hash.new(0)
  leaves = Hash.new { |h, k| h[k] = Hash.new(0) }
  samples.each do |comm, pid, _, time, f|
    next unless pids.include?(pid) && spans.any? { |w| w.cover?(time) }

    name_of_part = part(comm, f)
    counts[name_of_part] += 1
    leaves[name_of_part]["#{f.first[0]} (#{File.basename(f.first[1])})"] += 1
  end
  n = events * runs
  us = ->(c) { (c * period / 1000.0 / n).round(3) }
  top = ->(l) { l.sort_by { |_, c| -c }.first(8).to_h.transform_values(&us) }
  [name, { pids: pids, seconds: spans.sum { |w| w.last - w.first }.round(3),
           us_per_event: us.call(counts.values.sum),
           parts: counts.sort_by { |_, c| -c }.to_h.transform_values(&us),
           top_leaves: leaves.transform_values(&top) }]
end
puts JSON.pretty_generate(report)
