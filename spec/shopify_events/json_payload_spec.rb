# frozen_string_literal: true

require "json"

# Hash and Array payloads take a fast walk (ext/shopify_events/src/json_lean.rs)
# that gives way to the full encoder for anything unusual. Both must write
# the same bytes, and every error must come from the full encoder.
RSpec.describe "JSON payload encoding" do
  def json_of(payload)
    ShopifyEvents::Native.decode(ShopifyEvents::Native.encode("t", payload, nil, nil)).fetch(:payload)
  end

  def nested(depth)
    (1..depth).reduce("leaf") { |inner, level| level.even? ? { "l#{level}": inner } : [level, inner] }
  end

  it "writes JSON.generate's bytes for plain data, on both sides of where the fast walk gives way" do
    text = "plain ascii text that runs past one 8-byte word"
    payloads = [
      { user_id: 12_345, action: "checkout", amount: 42.5, tags: %w[a b c], ok: true, off: false, none: nil },
      { "string key" => 1, sym: :value, nested: { list: [1, [2, { deep: "x" }]] }, empty: {}, list: [] },
      # Escapes and non-ASCII at every position within an 8-byte word.
      (0..9).to_h { |i| [:"k#{i}", "#{"x" * i}\"\\\n\t\u0001é✓#{text}"] },
      { "quote\"key": 1, "é_key": 2, "tab\tkey" => 3, text => text },
      # The same Symbol keys again (the encoded-key cache), and more keys
      # than its slots, so some share one.
      (1..200).to_h { |i| [:"key_#{i}", i] },
      (1..200).to_h { |i| [:"key_#{i}", -i] },
      [-(2**62), (2**62) - 1, 0, -1.5, 0.25, "two", :three],
      nested(7), nested(8), nested(9), nested(20)
    ]
    payloads.each { |payload| expect(json_of(payload)).to eq(JSON.generate(payload)), payload.inspect[0, 80] }
  end

  it "gives way to the full encoder for values the fast walk leaves alone" do
    dynamic = :"dyn_#{rand(1_000_000)}"
    time = Time.utc(2024, 1, 2, 3, 4, 5, 678_901)
    payload = { 1 => "int key", dynamic => dynamic, big: 2**70, at: time, list: [2**65, { dynamic => [time] }] }

    expect(JSON.parse(json_of(payload))).to eq(
      "1" => "int key", dynamic.to_s => dynamic.to_s, "big" => 2**70, "at" => "2024-01-02T03:04:05.678901Z",
      "list" => [2**65, { dynamic.to_s => ["2024-01-02T03:04:05.678901Z"] }]
    )
  end

  it "reports errors the way the full encoder does, with the path to the value" do
    bad = { ok: [1, 2], deep: { list: [1, "\xFF".b] } }
    expect { json_of(bad) }.to raise_error(ArgumentError, /payload\[:deep\]\[:list\]\[1\] is not valid UTF-8/)
    expect { json_of({ a: [1.0, Float::NAN] }) }.to raise_error(ArgumentError, /NaN at payload\[:a\]\[1\]/)
    expect { json_of({ a: Object.new }) }.to raise_error(TypeError, /at payload\[:a\] as JSON/)
    cycle = { a: [] }
    cycle[:a] << cycle
    expect { json_of(cycle) }.to raise_error(ArgumentError, /recursive: payload\[:a\]\[0\] contains itself/)
  end
end
