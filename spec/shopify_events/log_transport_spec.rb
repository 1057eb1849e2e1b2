# frozen_string_literal: true

RSpec.describe "the log transport" do
  let(:log) { StringIO.new }

  before do
    ShopifyEvents.configure do |c|
      c.transport = :log
      c.logger = Logger.new(log)
    end
  end

  it "writes each event to the logger with its topic, key, headers, payload and id" do
    id = ShopifyEvents.emit("orders.created", { id: 1 }, key: "shop-1", headers: { "h" => "v" })
    expect(log.string).to include(%(emit orders.created key="shop-1" headers={"h"=>"v"} payload={"id":1} id=#{id}))
    expect(ShopifyEvents.stats).to include(transport: :log, emitted: 1)
  end

  it "validates events as sysv would" do
    expect { ShopifyEvents.emit("bad topic", "x") }.to raise_error(ShopifyEvents::InvalidTopic)
  end
end
