# frozen_string_literal: true

RSpec.describe "ShopifyEvents::Native::Bench" do
  it "ships no benchmark call that empties a queue in the production extension" do
    expect(ShopifyEvents::Native::Bench.singleton_methods.sort).to eq([:msgsnd_floor])
  end
end
