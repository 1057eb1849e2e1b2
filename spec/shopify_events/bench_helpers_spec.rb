# frozen_string_literal: true

RSpec.describe "ShopifyEvents::Native::Bench" do
  # Only calls that send, as any emitter may: msgsnd into a queue, appends
  # to a spool file of this process. Nothing that receives, empties or
  # removes a queue.
  it "ships no benchmark call that empties a queue in the production extension" do
    expect(ShopifyEvents::Native::Bench.singleton_methods.sort).to eq(%i[msgsnd_floor spool_append_floor])
  end
end
