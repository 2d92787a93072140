# %% openpyxl workbook with formulas and styles
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font, PatternFill
wb = Workbook(); ws = wb.active; ws.title = "Budget"
ws.append(["Item", "Cost"])
for item, cost in [("Rent", 1200), ("Food", 400), ("Travel", 150)]:
    ws.append([item, cost])
ws["A5"], ws["B5"] = "Total", "=SUM(B2:B4)"
ws["A1"].font = Font(bold=True); ws["B1"].fill = PatternFill("solid", fgColor="FFFF00")
wb.save("/mnt/data/budget.xlsx")
wb2 = load_workbook("/mnt/data/budget.xlsx")
assert wb2["Budget"]["B5"].value == "=SUM(B2:B4)" and wb2["Budget"]["A1"].font.bold
# %% openpyxl chart
from openpyxl.chart import BarChart, Reference
chart = BarChart(); chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=4), titles_from_data=True)
ws.add_chart(chart, "D2"); wb.save("/mnt/data/budget_chart.xlsx")
assert len(load_workbook("/mnt/data/budget_chart.xlsx")["Budget"]._charts) == 1
# %% xlsxwriter with pandas
import pandas as pd
df = pd.DataFrame({"a": range(5), "b": list("vwxyz")})
with pd.ExcelWriter("/mnt/data/xw.xlsx", engine="xlsxwriter") as w:
    df.to_excel(w, index=False, sheet_name="S")
    w.sheets["S"].set_column("A:B", 15)
assert pd.read_excel("/mnt/data/xw.xlsx").equals(df)
# %% python-docx document round trip
from docx import Document
from docx.shared import Pt
d = Document()
d.add_heading("Meeting notes", level=1)
p = d.add_paragraph("Attendees: "); p.add_run("Ana, Bo").bold = True
t = d.add_table(rows=2, cols=2); t.cell(0, 0).text = "Action"; t.cell(1, 0).text = "Ship it"
d.save("/mnt/data/notes.docx")
d2 = Document("/mnt/data/notes.docx")
assert d2.paragraphs[0].text == "Meeting notes" and d2.tables[0].cell(1, 0).text == "Ship it"
# %% docx2txt extraction
import docx2txt
assert "Attendees" in docx2txt.process("/mnt/data/notes.docx")
# %% python-pptx presentation round trip
from pptx import Presentation
from pptx.util import Inches
prs = Presentation()
s = prs.slides.add_slide(prs.slide_layouts[1])
s.shapes.title.text = "Results"
s.placeholders[1].text = "Revenue up 12%"
s2 = prs.slides.add_slide(prs.slide_layouts[5])
from PIL import Image
Image.new("RGB", (200, 100), "navy").save("/mnt/data/logo.png")
s2.shapes.add_picture("/mnt/data/logo.png", Inches(1), Inches(1))
prs.save("/mnt/data/deck.pptx")
p2 = Presentation("/mnt/data/deck.pptx")
assert p2.slides[0].shapes.title.text == "Results" and len(p2.slides) == 2
# %% pptx chart
from pptx.chart.data import CategoryChartData
from pptx.enum.chart import XL_CHART_TYPE
cd = CategoryChartData(); cd.categories = ["Q1", "Q2"]; cd.add_series("Sales", (10, 14))
slide = prs.slides.add_slide(prs.slide_layouts[6])
slide.shapes.add_chart(XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(1), Inches(6), Inches(4), cd)
prs.save("/mnt/data/deck2.pptx")
# %% odfpy spreadsheet via pandas
df.to_excel("/mnt/data/sheet.ods", engine="odf", index=False)
assert pd.read_excel("/mnt/data/sheet.ods", engine="odf").shape == (5, 2)
# %% xlrd legacy xls read of a written xlsx fails gracefully, csv works
import xlrd
assert xlrd.__version__
df.to_csv("/mnt/data/x.csv", index=False)
pd.read_csv("/mnt/data/x.csv").shape
# %% tabulate markdown table
from tabulate import tabulate
out = tabulate(df, headers="keys", tablefmt="github", showindex=False)
print(out)
assert out.startswith("|")
