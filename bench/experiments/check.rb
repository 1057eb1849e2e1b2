# frozen_string_literal: true

# Checks that every prototype in bench/experiments/native sends what the
# product sends: each variant emits a set of events into a private queue,
# and each envelope must decode (the product's decoder checks the frame and
# the CRC) to the same topic, key, flags and payload bytes as the product's
# own encoding of the same arguments. Ablations that change the envelope on
# purpose (no CRC, constant id) are checked for decoding where they can be.
# Prints one line per variant; exits 1 on any difference.
#
#   ruby bench/experiments/check.rb
require_relative "../profile/support"

include BenchSupport # rubocop:disable Style/MixinUsage

PAYLOADS = [
  STRING,
  HASH,
  { "quote\"d" => "tab\there \\ \u00e9\u4e2d", n: nil, t: true, f: false, big: 2**70, neg: -5,
    floats: [0.1, -1.5e-7, 1e22, 42.0], nested: { a: [{ b: :sym }], "x" => [] },
    time: Time.at(1_700_000_000, 123_456, :usec).utc },
  [1, "two", :three, [4.5]],
  "binary \xFF".b
].freeze
KEYS = [nil, "shop-1", 42, :sym].freeze
TOPICS = ["bench.events", :"bench.symbol", +"bench.unfrozen"].freeze
ABLATIONS = %w[nocrc noidstr constid nosend novalidate all_noidstr all_nosend].freeze

def fields(envelope)
  ShopifyEvents::Native.decode(envelope).slice(:topic, :key, :headers, :payload, :json)
end

failures = 0
with_queue(64) do |key|
  queue = ShopifyEvents::Native::Queue.open(key)
  ShopifyEvents::Experiments.configure(key, 0o600)
  emitter = ShopifyEvents::Experiments::Emitter.new(key, 0o600)
  senders = ShopifyEvents::Experiments::VARIANTS.keys.to_h { |v| [v, ->(*a) { emitter.public_send(:"emit_#{v}", *a) }] }
  senders["native_kw_all"] = ->(t, p, k, h) { ShopifyEvents::Experiments.native_kw_all(t, p, key: k, headers: h) }
  senders["positional_all"] = ->(*a) { ShopifyEvents::Experiments.positional_all(*a) }
  senders.each do |variant, send|
    empty_queue(key)
    problems = []
    TOPICS.product(PAYLOADS, KEYS).each do |topic, payload, k|
      expected = fields(ShopifyEvents::Native.encode(topic, payload, k, nil))
      id = send.call(topic, payload, k, nil)
      next problems << "nothing sent for #{topic.inspect}" if variant.end_with?("nosend") || variant == "nosend"

      body = queue.try_receive or next problems << "no message for #{topic.inspect}, #{payload.class}"
      if variant == "nocrc"
        problems << "CRC not zero" unless body.byteslice(-4, 4) == "\0\0\0\0".b
        next
      end
      got = fields(body)
      problems << "#{topic.inspect} #{payload.class} key=#{k.inspect}: #{got} != #{expected}" unless got == expected
      decoded_id = ShopifyEvents::Native.decode(body)[:id]
      unless ABLATIONS.include?(variant) || (id == decoded_id && id.encoding == Encoding::US_ASCII)
        problems << "returned id #{id.inspect} is not the envelope's #{decoded_id}"
      end
    rescue ShopifyEvents::Error, TypeError, ArgumentError => e
      problems << "#{topic.inspect} #{payload.class}: #{e.class}: #{e.message}"
    end
    problems.reject! { |p| p.start_with?("nothing sent") }
    ["bad topic"].each do |bad|
      send.call(bad, STRING, nil, nil)
      problems << "invalid topic #{bad.inspect} accepted" unless variant.include?("novalidate")
    rescue ShopifyEvents::InvalidTopic
      nil
    end
    empty_queue(key)
    begin
      send.call("bench.events", { a: Object.new }, nil, nil)
      problems << "unsupported value accepted"
    rescue TypeError => e
      problems << "error message differs: #{e.message}" unless e.message.include?("at payload[:a]")
    end
    puts format("%-22s %s", variant, problems.empty? ? "same as the product" : "DIFFERS")
    problems.first(5).each { |p| puts "    #{p}" }
    failures += 1 unless problems.empty?
  end
end
exit(failures.zero? ? 0 : 1)
