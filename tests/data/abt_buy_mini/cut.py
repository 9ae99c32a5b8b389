"""Cut tests/data/abt_buy_mini from the Leipzig Abt-Buy files, bytes kept as they are."""
import csv, io
SRC = "../shared/data/leipzig_abt-buy/"  # run from the project root
DST = "tests/data/abt_buy_mini/"
abt_lines = open(SRC + "Abt.csv", "rb").read().split(b"\n")
buy_lines = open(SRC + "Buy.csv", "rb").read().split(b"\n")
map_lines = open(SRC + "abt_buy_perfectMapping.csv", "rb").read().split(b"\n")
def first_cell(line):
    return line.split(b",", 1)[0].decode()
high = [i for i, l in enumerate(abt_lines[1:], 1) if any(x >= 0x80 for x in l)]
plain = [i for i, l in enumerate(abt_lines[1:], 1) if l.strip() and i not in high][:19]
chosen = sorted(high + plain)
abt_ids = {first_cell(abt_lines[i]) for i in chosen}
pairs = [l for l in map_lines[1:] if l.strip() and l.split(b",")[0].decode() in abt_ids]
buy_ids = {l.split(b",")[1].strip().decode() for l in pairs}
buy_chosen = [i for i, l in enumerate(buy_lines[1:], 1) if l.strip() and first_cell(l) in buy_ids]
open(DST + "Abt.csv", "wb").write(b"\n".join([abt_lines[0]] + [abt_lines[i] for i in chosen]) + b"\n")
open(DST + "Buy.csv", "wb").write(b"\n".join([buy_lines[0]] + [buy_lines[i] for i in buy_chosen]) + b"\n")
open(DST + "abt_buy_perfectMapping.csv", "wb").write(b"\n".join([map_lines[0]] + pairs) + b"\n")
print(len(chosen), len(buy_chosen), len(pairs))
