/work/main/test/vm/fault-fixture/fault_fixture.o
