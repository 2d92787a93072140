# %% OCR of a rendered image with pytesseract
from PIL import Image, ImageDraw, ImageFont
import pytesseract
img = Image.new("RGB", (900, 200), "white")
font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 48)
ImageDraw.Draw(img).text((20, 60), "Invoice total 1234.56", fill="black", font=font)
text = pytesseract.image_to_string(img)
print(text)
assert "1234.56" in text and "Invoice" in text
# %% OCR word boxes as a DataFrame
data = pytesseract.image_to_data(img, output_type=pytesseract.Output.DATAFRAME)
words = data.dropna(subset=["text"])
assert "total" in " ".join(words.text.astype(str))
# %% tesseract version and languages
print(pytesseract.get_tesseract_version())
assert "eng" in pytesseract.get_languages(config="")
# %% reportlab PDF read back with pdfplumber
from reportlab.lib.pagesizes import letter
from reportlab.pdfgen import canvas
c = canvas.Canvas("/mnt/data/report.pdf", pagesize=letter)
c.setFont("Helvetica", 14)
c.drawString(72, 720, "Quarterly Report")
c.drawString(72, 700, "Revenue: 1,250,000 USD")
c.showPage(); c.drawString(72, 720, "Page two"); c.save()
import pdfplumber
with pdfplumber.open("/mnt/data/report.pdf") as pdf:
    pages = [p.extract_text() for p in pdf.pages]
assert len(pages) == 2 and "Revenue: 1,250,000 USD" in pages[0]
# %% reportlab platypus table
from reportlab.lib import colors
from reportlab.platypus import SimpleDocTemplate, Table, TableStyle, Paragraph
from reportlab.lib.styles import getSampleStyleSheet
doc = SimpleDocTemplate("/mnt/data/table.pdf")
t = Table([["Item", "Qty"], ["Apples", "3"], ["Pears", "5"]])
t.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.grey)]))
doc.build([Paragraph("Inventory", getSampleStyleSheet()["Title"]), t])
with pdfplumber.open("/mnt/data/table.pdf") as pdf:
    table = pdf.pages[0].extract_table()
assert table[1] == ["Apples", "3"]
table
# %% fpdf2 document with a table of cells
from fpdf import FPDF
pdf = FPDF()
pdf.add_page()
pdf.set_font("Helvetica", size=12)
pdf.cell(0, 10, "Hello from fpdf2", new_x="LMARGIN", new_y="NEXT")
for row in [("a", "1"), ("b", "2")]:
    pdf.cell(40, 8, row[0], border=1); pdf.cell(40, 8, row[1], border=1, new_x="LMARGIN", new_y="NEXT")
pdf.output("/mnt/data/fpdf.pdf")
with pdfplumber.open("/mnt/data/fpdf.pdf") as p:
    assert "Hello from fpdf2" in p.pages[0].extract_text()
# %% fpdf2 with a unicode TTF font
pdf = FPDF(); pdf.add_page()
pdf.add_font("DejaVu", fname="/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
pdf.set_font("DejaVu", size=14)
pdf.multi_cell(0, 10, "Größe – café – Ελληνικά")
pdf.output("/mnt/data/unicode.pdf")
# %% PyMuPDF text, search and render
import fitz
doc = fitz.open("/mnt/data/report.pdf")
assert doc.page_count == 2
hits = doc[0].search_for("Revenue")
pix = doc[0].get_pixmap(dpi=72)
pix.save("/mnt/data/page1.png")
assert hits and pix.width > 500
doc[0].get_text()[:40]
# %% PyMuPDF creates a PDF
new = fitz.open()
page = new.new_page()
page.insert_text((72, 72), "Made with PyMuPDF", fontsize=14)
new.save("/mnt/data/fitz.pdf")
check = fitz.open("/mnt/data/fitz.pdf")
assert "Made with PyMuPDF" in check[0].get_text()
# %% pypdf merge and split
from pypdf import PdfReader, PdfWriter
w = PdfWriter()
for name in ("report.pdf", "fpdf.pdf"):
    for p in PdfReader("/mnt/data/" + name).pages:
        w.add_page(p)
w.write("/mnt/data/merged.pdf")
assert len(PdfReader("/mnt/data/merged.pdf").pages) == 3
# %% PyPDF2 legacy API
import PyPDF2
r = PyPDF2.PdfReader("/mnt/data/merged.pdf")
assert "Quarterly" in r.pages[0].extract_text()
# %% pdf2image with poppler
from pdf2image import convert_from_path
images = convert_from_path("/mnt/data/report.pdf", dpi=50)
assert len(images) == 2
images[0].size
# %% OCR of a rendered PDF page
text = pytesseract.image_to_string(convert_from_path("/mnt/data/report.pdf", dpi=200)[0])
assert "Quarterly" in text
# %% pdfplumber words and tables from fpdf output
with pdfplumber.open("/mnt/data/fpdf.pdf") as p:
    words = p.pages[0].extract_words()
assert any(w["text"] == "Hello" for w in words)
# %% pdfrw page count
from pdfrw import PdfReader as RwReader
assert len(RwReader("/mnt/data/merged.pdf").pages) == 3
# %% camelot stream table
import camelot
tables = camelot.read_pdf("/mnt/data/table.pdf", flavor="stream")
assert tables.n >= 1
tables[0].df
# %% weasyprint HTML to PDF
from weasyprint import HTML
HTML(string="<h1>Title</h1><p>Body text</p>").write_pdf("/mnt/data/weasy.pdf")
with pdfplumber.open("/mnt/data/weasy.pdf") as p:
    assert "Body text" in p.pages[0].extract_text()
